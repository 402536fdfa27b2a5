//! Health reports SERVING only once the server says it is ready, and NOT_SERVING from the
//! moment it starts to shut down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cosell_platform::auth::{KeySource, PublicKey, TokenVerifier};
use cosell_platform::server::{ServerOptions, ServiceSet, serve_when_ready};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

struct NoKeys;

impl KeySource for NoKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Vec<PublicKey>, String>> + Send + '_>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

async fn status(client: &mut HealthClient<tonic::transport::Channel>) -> ServingStatus {
    let s = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(s).unwrap()
}

#[tokio::test]
async fn serving_only_once_ready_and_not_once_stopping() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let options = ServerOptions {
        shutdown_drain: std::time::Duration::from_millis(300),
        ..ServerOptions::default()
    };
    let server = tokio::spawn(serve_when_ready(
        listener,
        ServiceSet::default(),
        Arc::new(TokenVerifier::new(Arc::new(NoKeys))),
        options,
        async move {
            let _ = ready_rx.await;
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    assert_eq!(status(&mut health).await, ServingStatus::NotServing);
    ready_tx.send(()).unwrap();
    let mut serving = false;
    for _ in 0..100 {
        if status(&mut health).await == ServingStatus::Serving {
            serving = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(serving, "SERVING once ready");
    stop_tx.send(()).unwrap();
    // During the drain time the server still answers, and says it is going away.
    let mut going = false;
    for _ in 0..100 {
        if status(&mut health).await == ServingStatus::NotServing {
            going = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(going, "NOT_SERVING while draining");
    server.await.unwrap().unwrap();
}
