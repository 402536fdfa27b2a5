//! Options shared by every subcommand that calls a server, and those subcommands.

use anyhow::Context;
use clap::Args;
use cosell_proto::identity as pb;
use tonic::transport::Channel;

#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Server URL: `http://...`, or `https://...` for a server with TLS.
    #[arg(long, env = "COSELL_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// CA certificate (PEM) to check an `https://` server against; without it, the system's
    /// roots.
    #[arg(long, env = "COSELL_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Bearer token (see `cosell dev-token`).
    #[arg(long, env = "COSELL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Connection {
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let ca =
            cosell_platform::tls::read_ca(self.ca_cert.as_deref()).map_err(anyhow::Error::msg)?;
        cosell_platform::tls::endpoint(&self.server, ca.as_deref())
            .map_err(|e| UsageError(format!("--server {} is not a usable URL: {e}", self.server)))?
            .connect()
            .await
            .with_context(|| format!("cannot reach {}", self.server))
    }

    /// A request carrying the token; a clear error when there is none.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let token = self.token.as_deref().ok_or_else(|| {
            UsageError(
                "this command needs a token: pass --token or set COSELL_TOKEN (get one with `cosell dev-token --email ...`)".into(),
            )
        })?;
        let mut req = tonic::Request::new(message);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .context("the token is not a valid header value")?,
        );
        Ok(req)
    }
}

/// The caller's own organization, `organizations/{id}`.
pub async fn own_organization(
    connection: &Connection,
    channel: &Channel,
) -> anyhow::Result<String> {
    Ok(
        pb::access_service_client::AccessServiceClient::new(channel.clone())
            .get_caller(connection.request(pb::GetCallerRequest {})?)
            .await
            .map_err(call_error)?
            .into_inner()
            .organization,
    )
}

/// Turns a failed call into an error that prints as the server answered it: one line with the
/// code, the reason (`ErrorInfo`) and the message, then one line per field violation.
pub fn call_error(status: tonic::Status) -> anyhow::Error {
    anyhow::Error::new(CallError(status))
}

/// A call the server refused or could not answer.
#[derive(Debug)]
pub struct CallError(pub tonic::Status);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use tonic_types::StatusExt;
        let details = self.0.get_error_details();
        write!(f, "{}", code_name(self.0.code()))?;
        if let Some(info) = details.error_info() {
            write!(f, " {}", info.reason)?;
        }
        write!(f, ": {}", self.0.message())?;
        if let Some(bad) = details.bad_request() {
            for v in &bad.field_violations {
                write!(f, "\n  field {}: {}", v.field, v.description)?;
            }
        }
        if let Some(retry) = details.retry_info().and_then(|r| r.retry_delay) {
            write!(f, "\n  retry after {:.1} s", retry.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

/// A command line that cannot work as given (a missing token, an unusable URL): exit code 2,
/// as clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The canonical gRPC name of a code (`NOT_FOUND`), as grpcurl and the other languages' clients
/// print it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `ORG` or `organizations/ORG` -> `organizations/ORG`.
pub fn organization_name(org: &str) -> String {
    if org.starts_with("organizations/") {
        org.to_owned()
    } else {
        format!("organizations/{org}")
    }
}

#[derive(Debug, Args)]
pub struct DevTokenArgs {
    /// The user's email.
    #[arg(long)]
    email: String,
    /// `organizations/{id}`, when the email is a user of several organizations.
    #[arg(long, default_value = "")]
    organization: String,
    #[command(flatten)]
    connection: Connection,
}

pub async fn dev_token(args: DevTokenArgs) -> anyhow::Result<()> {
    let mut client =
        pb::token_service_client::TokenServiceClient::new(args.connection.channel().await?);
    let resp = client
        .sign_in_with_email(pb::SignInWithEmailRequest {
            email: args.email,
            organization: args.organization,
        })
        .await
        .map_err(call_error)?
        .into_inner();
    println!("{}", resp.access_token);
    Ok(())
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Print only this field (for scripts).
    #[arg(long, value_enum)]
    field: Option<WhoamiField>,
    /// One JSON object instead of lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum WhoamiField {
    Principal,
    Organization,
    Email,
}

pub async fn whoami(args: WhoamiArgs) -> anyhow::Result<()> {
    let mut client =
        pb::access_service_client::AccessServiceClient::new(args.connection.channel().await?);
    let me = client
        .get_caller(args.connection.request(pb::GetCallerRequest {})?)
        .await
        .map_err(call_error)?
        .into_inner();
    if let Some(field) = args.field {
        let value = match field {
            WhoamiField::Principal => me.principal.clone(),
            WhoamiField::Organization => me.organization.clone(),
            WhoamiField::Email => me
                .user
                .as_ref()
                .map(|u| u.email.clone())
                .unwrap_or_default(),
        };
        println!("{value}");
        return Ok(());
    }
    if args.json {
        let grants: Vec<serde_json::Value> = me
            .grants
            .iter()
            .map(|g| {
                serde_json::json!({
                    "role": pb::Role::try_from(g.role).map(|r| r.as_str_name()).unwrap_or("?"),
                    "mpn_id": g.mpn_id,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "principal": me.principal, "organization": me.organization,
                "email": me.user.as_ref().map(|u| u.email.clone()).unwrap_or_default(),
                "grants": grants,
            })
        );
        return Ok(());
    }
    println!("principal     {}", me.principal);
    if let Some(user) = &me.user {
        println!("email         {}", user.email);
        println!("organization  {}", me.organization);
    }
    for g in &me.grants {
        let role = pb::Role::try_from(g.role)
            .map(|r| r.as_str_name())
            .unwrap_or("?");
        let scope = if g.mpn_id.is_empty() {
            "entire organization".to_string()
        } else {
            format!("MPN location {}", g.mpn_id)
        };
        println!("role          {role} ({scope})");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct AdminsArgs {
    /// `organizations/{id}`; default: the caller's own.
    #[arg(long)]
    organization: Option<String>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn admins(args: AdminsArgs) -> anyhow::Result<()> {
    let channel = args.connection.channel().await?;
    let parent = match args.organization {
        Some(o) => o,
        None => own_organization(&args.connection, &channel).await?,
    };
    let admins = pb::user_service_client::UserServiceClient::new(channel)
        .list_admins(args.connection.request(pb::ListAdminsRequest { parent })?)
        .await
        .map_err(call_error)?
        .into_inner();
    let rows = (admins.account_admins.iter().map(|u| ("account_admin", u)))
        .chain(admins.global_admins.iter().map(|u| ("global_admin", u)));
    for (kind, u) in rows {
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "kind": kind, "email": u.email, "given_name": u.given_name,
                    "family_name": u.family_name,
                })
            );
        } else {
            println!(
                "{:<14} {}  {} {}",
                kind.replace('_', " "),
                u.email,
                u.given_name,
                u.family_name
            );
        }
    }
    Ok(())
}
