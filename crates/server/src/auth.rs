//! Users, roles and API tokens. A token is 32 random bytes shown once; the
//! database keeps only its SHA-256, so a leaked database gives no tokens.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use sqlx::Row;

use crate::db::{new_id, now_ms, random_token, sha256_hex};
use crate::error::{ApiError, StoreError};
use crate::App;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Modeller,
    Researcher,
    Clinician,
    DataSteward,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Admin, Role::Modeller, Role::Researcher, Role::Clinician, Role::DataSteward];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Modeller => "modeller",
            Role::Researcher => "researcher",
            Role::Clinician => "clinician",
            Role::DataSteward => "data_steward",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// Who is calling: a user, or nobody (anonymous).
#[derive(Clone, Debug)]
pub struct Caller(pub Option<User>);

impl Caller {
    /// The user, or 401.
    pub fn user(&self) -> Result<&User, ApiError> {
        self.0.as_ref().ok_or_else(ApiError::unauthorized)
    }

    /// The user if they hold one of `roles`: 401 without a token, 403 with another role.
    pub fn require(&self, roles: &[Role]) -> Result<&User, ApiError> {
        let u = self.user()?;
        if roles.contains(&u.role) {
            Ok(u)
        } else {
            let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::forbidden(format!(
                "this needs the role {} (you are {})",
                names.join(" or "),
                u.role.as_str()
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.0.as_ref().is_some_and(|u| u.role == Role::Admin)
    }

    pub fn id(&self) -> Option<&str> {
        self.0.as_ref().map(|u| u.id.as_str())
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Caller, ApiError> {
        let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
            return Ok(Caller(None));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header must be 'Bearer TOKEN'",
                )
            })?;
        // A wrong token is an error, not an anonymous call: the caller meant to be someone.
        match user_by_token(app, token).await? {
            Some(u) => Ok(Caller(Some(u))),
            None => Err(ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", "unknown API token")),
        }
    }
}

pub async fn user_by_token(app: &App, token: &str) -> Result<Option<User>, StoreError> {
    let row = sqlx::query("SELECT id, name, role FROM users WHERE token_hash = $1")
        .bind(sha256_hex(token.as_bytes()))
        .fetch_optional(&app.db.pool)
        .await?;
    row.map(user_from_row).transpose()
}

fn user_from_row(r: sqlx::any::AnyRow) -> Result<User, StoreError> {
    let id: String = r.try_get("id")?;
    let role: String = r.try_get("role")?;
    let role = Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
        table: "users",
        column: "role",
        id: id.clone(),
        message: format!("unknown role '{role}'"),
    })?;
    Ok(User { id, name: r.try_get("name")?, role })
}

pub async fn user_by_id(app: &App, id: &str) -> Result<Option<User>, StoreError> {
    let row =
        sqlx::query("SELECT id, name, role FROM users WHERE id = $1").bind(id).fetch_optional(&app.db.pool).await?;
    row.map(user_from_row).transpose()
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user named '{0}' exists")]
    Exists(String),
    #[error("the operating system's random generator failed: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a user with a fresh token (or the given one) and returns (id, token).
pub async fn create_user(
    app: &App,
    name: &str,
    role: Role,
    token: Option<&str>,
) -> Result<(String, String), CreateUserError> {
    let token = match token {
        Some(t) => t.to_string(),
        None => random_token().map_err(CreateUserError::Random)?,
    };
    let id = new_id();
    let r = sqlx::query(
        "INSERT INTO users (id, name, role, token_hash, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&id)
    .bind(name)
    .bind(role.as_str())
    .bind(sha256_hex(token.as_bytes()))
    .bind(now_ms())
    .execute(&app.db.pool)
    .await
    .map_err(StoreError::from)?;
    if r.rows_affected() == 0 {
        return Err(CreateUserError::Exists(name.into()));
    }
    Ok((id, token))
}

/// Projects the user belongs to: (id, name).
pub async fn projects_of(app: &App, user: &str) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.id, p.name FROM projects p JOIN members m ON m.project = p.id WHERE m.user_id = $1 ORDER BY p.name",
    )
    .bind(user)
    .fetch_all(&app.db.pool)
    .await?;
    rows.into_iter().map(|r| Ok((r.try_get("id")?, r.try_get("name")?))).collect()
}

pub async fn is_member(app: &App, project: &str, user: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE project = $1 AND user_id = $2")
        .bind(project)
        .bind(user)
        .fetch_one(&app.db.pool)
        .await?;
    Ok(n > 0)
}
