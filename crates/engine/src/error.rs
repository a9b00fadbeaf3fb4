//! The engine's errors, each with the HTTP status Docker answers it with and Docker's wording.

/// What went wrong, in the categories the Docker API distinguishes by status code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404: no such container, image, exec.
    #[error("{0}")]
    NotFound(String),
    /// 403: an operation the object's state forbids (a network with active endpoints, a
    /// pre-defined network).
    #[error("{0}")]
    Forbidden(String),
    /// 409: a name in use, a running container removed without force.
    #[error("{0}")]
    Conflict(String),
    /// 400: a bad parameter or body.
    #[error("{0}")]
    InvalidParameter(String),
    /// 304: the operation had nothing to do (start of a running container).
    #[error("{0}")]
    NotModified(String),
    /// 501: what the container's configuration does not offer (reading the log of a
    /// container whose log driver keeps none).
    #[error("{0}")]
    NotImplemented(String),
    /// 500: anything else, said in words.
    #[error("{0}")]
    Internal(String),
    /// 500: `context` failed because of `source`, which is kept (for logs, and for callers
    /// that look at it: a full disk, an I/O error).
    #[error("{}", failed_text(context, source))]
    Failed {
        context: String,
        #[source]
        source: Source,
    },
}

/// What an [`EngineError::Failed`] keeps as its cause.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

fn failed_text(context: &str, source: &Source) -> String {
    if context.is_empty() {
        source.to_string()
    } else {
        format!("{context}: {source}")
    }
}

impl EngineError {
    /// The HTTP status Docker answers with.
    pub fn status(&self) -> u16 {
        match self {
            EngineError::NotFound(_) => 404,
            EngineError::Forbidden(_) => 403,
            EngineError::Conflict(_) => 409,
            EngineError::InvalidParameter(_) => 400,
            EngineError::NotModified(_) => 304,
            EngineError::NotImplemented(_) => 501,
            EngineError::Internal(_) | EngineError::Failed { .. } => 500,
        }
    }

    /// `context` failed because of `e` (kept as the source).
    pub(crate) fn internal(context: &str, e: impl Into<Source>) -> EngineError {
        EngineError::Failed {
            context: context.to_string(),
            source: e.into(),
        }
    }

    /// Whether it is a 500 (what a full disk or another I/O failure gives).
    pub fn is_internal(&self) -> bool {
        self.status() == 500
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
