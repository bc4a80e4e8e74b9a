//! Errors: `StoreError` from the storage layer and the catalogue readers,
//! `ApiError` (the one error the HTTP layer returns) with its status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Failures below the HTTP layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("database migration {version}: {source}")]
    Migration { version: i64, source: sqlx::Error },
    #[error("unsupported database URL '{url}' (use sqlite://FILE or postgres://...)")]
    BadUrl { url: String },
    #[error("stored value of {table}.{column} (row {id}) is not valid: {message}")]
    Corrupt { table: &'static str, column: &'static str, id: String, message: String },
}

/// An import that cannot be accepted: the file and what was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    #[error("{file}: not an SBML document: {message}")]
    NotSbml { file: String, message: String },
    #[error("{file}: the model does not load: {message}")]
    DoesNotLoad { file: String, message: String },
    #[error("{file}: not a readable zip archive: {message}")]
    BadZip { file: String, message: String },
    #[error("{file}: {message}")]
    BadArchive { file: String, message: String },
    #[error("{file}: PEtab problem: {message}")]
    BadPetab { file: String, message: String },
}

/// The HTTP error: `{"error": {"code", "message"}}` with a status.
/// Details of 500s go to the log, not to the caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "this needs an API token (Authorization: Bearer TOKEN)")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error (details are in the server log)")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> ApiError {
        ApiError::unprocessable(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}
