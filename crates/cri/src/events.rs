//! `GetContainerEvents`: the stream kubelet's evented PLEG reads instead of listing
//! everything each second. The engine's container events (`create`, `start`, `die`,
//! `destroy`) of the CRI's objects become CREATED, STARTED, STOPPED and DELETED events, each
//! with its pod's status and the statuses of the pod's containers, as containerd sends them.
//! A sandbox's own events carry its id as the container id.

use std::collections::HashMap;

use berth_api::models::{EventMessage, EventMessageTypeEnum};
use k8s_cri::v1 as cri;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use crate::record::Record;
use crate::Cri;

/// Events not yet read by a slow client: beyond this the stream ends (the client reconnects
/// and lists again, as kubelet does when its stream breaks).
const BUFFER: usize = 1024;

/// The stream of one `GetContainerEvents` call.
pub type EventStream =
    tokio_stream::wrappers::ReceiverStream<Result<cri::ContainerEventResponse, Status>>;

impl Cri {
    pub(crate) fn container_events(&self) -> EventStream {
        let (_, mut rx) = self.engine.events.subscribe();
        let (tx, out) = mpsc::channel(BUFFER);
        // What each CRI object is, for the events of objects already gone (`destroy`).
        let mut known: HashMap<String, String> = self
            .engine
            .containers
            .scan(|c| Some((c.id.clone(), sandbox_of(&Record::of(c)?, &c.id))))
            .into_iter()
            .collect();
        let cri = self.clone();
        tokio::spawn(async move {
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "CRI event stream fell behind; ending it");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(response) = cri.event_response(&event, &mut known) else {
                    continue;
                };
                if tx.try_send(Ok(response)).is_err() {
                    // Gone or too slow: the client lists again when it reconnects.
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(out)
    }

    /// The CRI event of an engine event, if it is one of a CRI object's.
    fn event_response(
        &self,
        event: &EventMessage,
        known: &mut HashMap<String, String>,
    ) -> Option<cri::ContainerEventResponse> {
        if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return None;
        }
        let id = event.actor.as_ref()?.id.clone()?;
        let kind = match event.action.as_deref()? {
            "create" => cri::ContainerEventType::ContainerCreatedEvent,
            "start" => cri::ContainerEventType::ContainerStartedEvent,
            "die" => cri::ContainerEventType::ContainerStoppedEvent,
            "destroy" => cri::ContainerEventType::ContainerDeletedEvent,
            _ => return None,
        };
        let sandbox = match self.engine.containers.get(&id) {
            Ok(c) => {
                let sandbox = sandbox_of(&Record::of(&c)?, &c.id);
                known.insert(id.clone(), sandbox.clone());
                sandbox
            }
            Err(_) => known.get(&id)?.clone(),
        };
        if kind == cri::ContainerEventType::ContainerDeletedEvent {
            known.remove(&id);
        }
        let pod_sandbox_status = self
            .pod_sandbox_status(&sandbox, false)
            .ok()
            .and_then(|r| r.status);
        let containers_statuses = self
            .pod_containers(&sandbox)
            .iter()
            .filter_map(|(c, _)| self.container_status(&c.id, false).ok()?.status)
            .collect();
        Some(cri::ContainerEventResponse {
            container_id: id,
            container_event_type: kind as i32,
            created_at: event.time_nano.unwrap_or(0),
            pod_sandbox_status,
            containers_statuses,
        })
    }
}

/// The sandbox a CRI object belongs to (a sandbox to itself).
fn sandbox_of(record: &Record, id: &str) -> String {
    match record {
        Record::Sandbox(_) => id.to_string(),
        Record::Container(c) => c.sandbox_id.clone(),
    }
}
