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
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--server {} is not a usable URL", self.server))?
            .connect()
            .await
            .with_context(|| format!("cannot reach {}", self.server))
    }

    /// A request carrying the token; a clear error when there is none.
    pub fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let token = self
            .token
            .as_deref()
            .context("this command needs a token: pass --token or set COSELL_TOKEN (get one with `cosell dev-token --email ...`)")?;
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

/// Turns a failed call into an error that says the code and the server's message.
pub fn call_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
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
    for u in &admins.account_admins {
        println!(
            "account admin  {}  {} {}",
            u.email, u.given_name, u.family_name
        );
    }
    for u in &admins.global_admins {
        println!(
            "global admin   {}  {} {}",
            u.email, u.given_name, u.family_name
        );
    }
    Ok(())
}
