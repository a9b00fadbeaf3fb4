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
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
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
            EngineError::Internal(_) => 500,
        }
    }

    pub(crate) fn internal(context: &str, e: impl std::fmt::Display) -> EngineError {
        EngineError::Internal(format!("{context}: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
