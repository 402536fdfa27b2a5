//! PSC uploads (`MigrationService/ImportPscExport`) as tests make them: a bundle cut into
//! messages, and an upload whose stream the test holds open (to find it in progress).

use cosell_proto::migration as pb;
use tonic::Status;
use tonic::transport::Channel;

use crate::authed;

/// The messages of an upload of `files` (name, bytes) to `organization`, `chunk` bytes each.
pub fn messages(
    organization: &str,
    files: &[(&str, Vec<u8>)],
    chunk: usize,
) -> Vec<pb::ImportPscExportRequest> {
    let mut messages = Vec::new();
    for (name, bytes) in files {
        for part in bytes.chunks(chunk) {
            messages.push(pb::ImportPscExportRequest {
                organization: if messages.is_empty() {
                    organization.to_owned()
                } else {
                    String::new()
                },
                file_name: name.to_string(),
                chunk: part.to_vec(),
            });
        }
    }
    messages
}

/// An upload whose first message is sent and whose stream stays open until [`finish`]ed.
///
/// [`finish`]: OpenUpload::finish
pub struct OpenUpload {
    pub messages: tokio::sync::mpsc::Sender<pb::ImportPscExportRequest>,
    pub call: tokio::task::JoinHandle<Result<pb::PscImport, Status>>,
}

impl OpenUpload {
    pub async fn start(channel: Channel, token: &str, first: pb::ImportPscExportRequest) -> Self {
        let (messages, rx) = tokio::sync::mpsc::channel(4);
        let mut client = pb::migration_service_client::MigrationServiceClient::new(channel);
        let token = token.to_owned();
        let call = tokio::spawn(async move {
            client
                .import_psc_export(authed(
                    &token,
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                ))
                .await
                .map(|r| r.into_inner().import.unwrap_or_default())
        });
        messages.send(first).await.expect("the call takes messages");
        OpenUpload { messages, call }
    }

    /// Sends `last`, ends the stream, and waits for the answer (a call that ended already,
    /// refused, answers with its refusal).
    pub async fn finish(self, last: pb::ImportPscExportRequest) -> Result<pb::PscImport, Status> {
        let _ = self.messages.send(last).await;
        drop(self.messages);
        self.call.await.expect("the call's task runs to its end")
    }

    /// Two uploads started at once: whichever the server took first goes on, and the other's
    /// answer comes at once. (That answer, the upload going on.)
    pub async fn first_answer(
        mut a: OpenUpload,
        mut b: OpenUpload,
    ) -> (Result<pb::PscImport, Status>, OpenUpload) {
        tokio::select! {
            r = &mut a.call => (r.expect("the call's task runs to its end"), b),
            r = &mut b.call => (r.expect("the call's task runs to its end"), a),
        }
    }
}
