//! Identity + directory on one test server.

use std::sync::Arc;
use std::time::Duration;

use cosell_platform::auth::{AccessClient, RemoteKeys, ServiceToken, TokenVerifier};
use cosell_proto::directory as pb;
use cosell_proto::identity as ipb;
use cosell_testkit::{TestDb, TestServer, authed};
use tonic::transport::{Channel, Endpoint};

const DIRECTORY_SECRET: &str = "directory-secret-for-tests-0001";

pub struct Harness {
    pub server: TestServer,
    pub directory: Arc<cosell_directory::Directory>,
    _dbs: (TestDb, TestDb),
}

impl Harness {
    /// With the bundled sample loaded when `sample` is set.
    pub async fn start(sample: bool) -> Self {
        Self::start_with(sample, Default::default()).await
    }

    pub async fn start_with(sample: bool, options: cosell_platform::server::ServerOptions) -> Self {
        let identity_db = TestDb::new().await.unwrap();
        let directory_db = TestDb::new().await.unwrap();
        let mut identity = cosell_identity::Config::new(identity_db.url.clone());
        identity.dev_auth = true;
        identity.demo = true;
        identity.service_principals = vec![("directory".into(), DIRECTORY_SECRET.into())];
        let identity = cosell_identity::start(&identity).await.unwrap();

        // The directory reaches identity over loopback, through a listener bound first.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loopback: Channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let token = Arc::new(ServiceToken::new(
            loopback.clone(),
            "directory",
            DIRECTORY_SECRET,
        ));
        let access = Arc::new(AccessClient::new(loopback.clone(), token));
        let mut config = cosell_directory::Config::new(directory_db.url.clone());
        config.load_sample = sample;
        let directory = cosell_directory::start(&config, Some(access))
            .await
            .unwrap();
        let verifier = Arc::new(TokenVerifier::new(Arc::new(RemoteKeys::new(loopback))));
        let services = identity.services.merge(directory.services);
        let server = TestServer::start_on(listener, services, verifier, options)
            .await
            .unwrap();
        Self {
            server,
            directory: directory.directory,
            _dbs: (identity_db, directory_db),
        }
    }

    pub fn client(&self) -> pb::directory_service_client::DirectoryServiceClient<Channel> {
        pb::directory_service_client::DirectoryServiceClient::new(self.server.channel.clone())
            .max_decoding_message_size(16 * 1024 * 1024)
    }

    pub async fn token(&self, email: &str) -> String {
        ipb::token_service_client::TokenServiceClient::new(self.server.channel.clone())
            .sign_in_with_email(ipb::SignInWithEmailRequest {
                email: email.into(),
                organization: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .access_token
    }

    /// Searches as a Contoso user; the legal names of the results, best first.
    pub async fn search(&self, query: &str, country: &str, city: &str) -> Vec<pb::LegalEntity> {
        let token = self.token("uma.user@contoso.com").await;
        self.client()
            .search_entities(authed(
                &token,
                pb::SearchEntitiesRequest {
                    query: query.into(),
                    country_code: country.into(),
                    city: city.into(),
                    page_size: 10,
                    ..Default::default()
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("search {query:?}: {s:?}"))
            .into_inner()
            .results
            .into_iter()
            .map(|r| r.entity.unwrap())
            .collect()
    }

    /// Uploads `bytes` as a load by `token`, in chunks; every response until the end.
    pub async fn load(
        &self,
        token: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<pb::LoadEntitiesResponse>, tonic::Status> {
        let chunks: Vec<pb::LoadEntitiesRequest> = bytes
            .chunks(64 * 1024)
            .map(|c| pb::LoadEntitiesRequest {
                chunk: c.to_vec(),
                file_name: "upload.csv".into(),
            })
            .collect();
        let mut stream = self
            .client()
            .load_entities(authed(token, tokio_stream::iter(chunks)))
            .await?
            .into_inner();
        let mut out = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(120), stream.message()).await {
                Ok(Ok(Some(m))) => out.push(m),
                Ok(Ok(None)) => return Ok(out),
                Ok(Err(s)) => return Err(s),
                Err(_) => panic!("load did not finish"),
            }
        }
    }
}
