//! The server bootstrap as identity uses it: health and graceful shutdown.

use std::time::Duration;

use cosell_platform::server::ServerOptions;
use cosell_testkit::{TestDb, TestServer};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(
    client: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> Result<i32, tonic::Status> {
    client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn health_reports_each_service_and_flips_to_not_serving_on_shutdown() {
    let db = TestDb::new().await.unwrap();
    let started = cosell_identity::start(&cosell_identity::Config::new(db.url.clone()))
        .await
        .unwrap();
    let options = ServerOptions {
        shutdown_drain: Duration::from_millis(1500),
        ..ServerOptions::default()
    };
    let mut server = TestServer::start_with(started.services, started.verifier, options)
        .await
        .unwrap();
    let mut health = HealthClient::new(server.channel.clone());
    for service in [
        "",
        "cosell.identity.v1.UserService",
        "cosell.identity.v1.TokenService",
    ] {
        assert_eq!(
            status(&mut health, service).await.unwrap(),
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let unknown = status(&mut health, "cosell.nothing.v1.NoService")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // During the drain the server still answers, and says NOT_SERVING.
    server.begin_shutdown();
    let mut seen = false;
    for _ in 0..50 {
        let now = status(&mut health, "cosell.identity.v1.UserService").await;
        if now.is_ok_and(|s| s == ServingStatus::NotServing as i32) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "health went NOT_SERVING while draining");
    server.shutdown().await.expect("stops cleanly");
}
