//! The event stream (`GET /events`): every container and image action, broadcast to listeners
//! and kept in a short history for `since`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use berth_api::models::{EventActor, EventMessage, EventMessageTypeEnum};
use tokio::sync::broadcast;

/// How many past events `since` can reach.
const HISTORY: usize = 1024;

/// The engine's event bus.
#[derive(Debug, Clone)]
pub struct Events {
    tx: broadcast::Sender<EventMessage>,
    history: Arc<Mutex<VecDeque<EventMessage>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(256).0,
            history: Arc::new(Mutex::new(VecDeque::new())),
        }
    }
}

impl Events {
    /// Publishes an event about `id` of `kind` (`container`, `image`).
    pub fn publish(
        &self,
        kind: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attributes: HashMap<String, String>,
    ) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let event = EventMessage {
            typ: Some(kind),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(id.to_string()),
                attributes: Some(attributes),
            }),
            scope: Some(berth_api::models::EventMessageScopeEnum::LOCAL),
            time: Some(now.as_secs() as i64),
            time_nano: Some(now.as_nanos() as i64),
        };
        {
            let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// Past events (oldest first) and a receiver of the ones to come.
    pub fn subscribe(&self) -> (Vec<EventMessage>, broadcast::Receiver<EventMessage>) {
        let h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        (h.iter().cloned().collect(), self.tx.subscribe())
    }
}
