//! `DownloadDealMigrationReport` (SPEC 5.4): the deal migration report as one CSV file, streamed
//! in chunks.
//!
//! A task of its own reads the report a page at a time, encodes it with the `csv` crate and
//! sends chunks of at most [`CHUNK`] bytes into a channel of [`QUEUED`] messages: it reads the
//! next page only once the client has taken enough of what came before, so a report of any
//! size, and a client of any speed, costs the server a page and a few chunks. The client reads
//! [`ReportStream`], which ends OK only after the task said the file is whole, and ends at once
//! with UNAVAILABLE when the server shuts down (see [`Migration::streams_end`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use cosell_platform::ApiError;
use cosell_proto::migration as pb;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tonic::{Request, Status};
use uuid::Uuid;

use super::{DOMAIN, Migration};
use crate::store::entities::deal_result;

/// The CSV's header: the columns of each row.
pub const HEADER: [&str; 8] = [
    "psc_deal_id",
    "deal_name",
    "engagement_id",
    "referral_id",
    "deal_type",
    "direction",
    "error",
    "customer_match",
];

/// Most bytes of the file one message carries.
pub const CHUNK: usize = 64 * 1024;

/// Report rows read from the store at a time.
const PAGE: u64 = 1000;

/// Messages the task may have sent ahead of the client.
const QUEUED: usize = 2;

/// What the task tells the stream.
enum Piece {
    /// The file's next bytes.
    Chunk(Vec<u8>),
    /// The file is whole: the stream may end OK.
    End,
    /// The download failed: the stream ends with this.
    Failed(Status),
}

/// The stream `DownloadDealMigrationReport` answers with.
pub struct ReportStream {
    pieces: mpsc::Receiver<Piece>,
    /// Resolves when the server starts shutting down.
    ending: BoxFuture<'static, ()>,
    done: bool,
}

impl futures::Stream for ReportStream {
    type Item = Result<pb::DownloadDealMigrationReportResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A shutdown ends the download at once, whatever the task has queued.
        if self.ending.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(DOMAIN.status(shutting_down()))));
        }
        let piece = match self.pieces.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(piece) => piece,
        };
        match piece {
            Some(Piece::Chunk(chunk)) => {
                Poll::Ready(Some(Ok(pb::DownloadDealMigrationReportResponse { chunk })))
            }
            Some(Piece::End) => {
                self.done = true;
                Poll::Ready(None)
            }
            Some(Piece::Failed(s)) => {
                self.done = true;
                Poll::Ready(Some(Err(s)))
            }
            // The task stopped without a word (it panicked): the file is not whole, so the
            // stream must not end OK.
            None => {
                self.done = true;
                Poll::Ready(Some(Err(DOMAIN.status(ApiError::internal(
                    "the report download stopped before its end",
                )))))
            }
        }
    }
}

fn shutting_down() -> ApiError {
    ApiError::unavailable(
        "SHUTTING_DOWN",
        "this server is shutting down; download the report again",
    )
}

/// A row of the report as the CSV has it.
fn record(r: &deal_result::Model) -> [&str; 8] {
    [
        &r.deal_id,
        &r.deal_name,
        r.engagement.trim_start_matches("engagements/"),
        r.referral.trim_start_matches("referrals/"),
        &r.deal_type,
        &r.direction,
        &r.error,
        &r.customer_match,
    ]
}

/// The CSV encoder: records go in a page at a time, chunks of exactly [`CHUNK`] bytes come out
/// (and the rest at the end), so that what it holds is at most a chunk and a page's CSV.
#[derive(Default)]
struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// Encodes `records`.
    fn write<'a>(&mut self, records: impl IntoIterator<Item = [&'a str; 8]>) -> csv::Result<()> {
        let mut csv = csv::Writer::from_writer(std::mem::take(&mut self.buf));
        for r in records {
            csv.write_record(r)?;
        }
        self.buf = csv.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }

    /// The next whole chunk, if one is ready.
    fn full(&mut self) -> Option<Vec<u8>> {
        if self.buf.len() < CHUNK {
            return None;
        }
        let rest = self.buf.split_off(CHUNK);
        Some(std::mem::replace(&mut self.buf, rest))
    }

    /// What is left once every record is in (possibly nothing).
    fn rest(self) -> Vec<u8> {
        self.buf
    }
}

impl Migration {
    pub(super) async fn download_deal_migration_report(
        migration: Arc<Migration>,
        req: Request<pb::DownloadDealMigrationReportRequest>,
    ) -> Result<ReportStream, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = migration.authorize(&req, "parent", &parent).await?;
        let mut ending = migration.streams_end.subscribe();
        if *ending.borrow() {
            return Err(shutting_down());
        }
        let (tx, rx) = mpsc::channel(QUEUED);
        // A task of its own, so that a client that goes away ends it at the next send; it stops
        // reading at shutdown too (the stream has told the client by then).
        let mut stop = ending.clone();
        tokio::spawn(async move {
            let piece = tokio::select! {
                biased;
                _ = stop.wait_for(|end| *end) => return,
                _ = tx.closed() => return,
                piece = migration.encode_report(org, &tx) => piece,
            };
            let _ = tx.send(piece).await;
        });
        Ok(ReportStream {
            pieces: rx,
            ending: Box::pin(async move {
                // An error means the service is gone: shutting down all the same.
                let _ = ending.wait_for(|end| *end).await;
            }),
            done: false,
        })
    }

    /// Encodes `org`'s report into `tx`, page after page; its last piece.
    async fn encode_report(&self, org: Uuid, tx: &mpsc::Sender<Piece>) -> Piece {
        let failed = |e: csv::Error| Piece::Failed(DOMAIN.status(ApiError::internal(e)));
        let mut encoder = Encoder::default();
        if let Err(e) = encoder.write([HEADER]) {
            return failed(e);
        }
        let mut after: Option<String> = None;
        loop {
            let page = match self.store.results(org, after.as_deref(), PAGE).await {
                Ok(page) => page,
                Err(e) => return Piece::Failed(DOMAIN.status(e)),
            };
            if let Err(e) = encoder.write(page.iter().map(record)) {
                return failed(e);
            }
            while let Some(chunk) = encoder.full() {
                if tx.send(Piece::Chunk(chunk)).await.is_err() {
                    // The client went away: nobody to tell.
                    return Piece::End;
                }
            }
            if (page.len() as u64) < PAGE {
                break;
            }
            after = page.last().map(|r| r.deal_id.clone());
        }
        let rest = encoder.rest();
        if !rest.is_empty() {
            // A client gone by now is told nothing either way.
            let _ = tx.send(Piece::Chunk(rest)).await;
        }
        Piece::End
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, error: &str) -> deal_result::Model {
        deal_result::Model {
            organization: String::new(),
            deal_id: id.into(),
            run_id: String::new(),
            state: "FAILED".into(),
            lease_owner: String::new(),
            lease_until: None,
            deal_name: name.into(),
            engagement: "engagements/e1".into(),
            referral: "referrals/r1".into(),
            deal_type: "CO_SELL".into(),
            direction: "OUTBOUND".into(),
            error: error.into(),
            notes: "not in the CSV".into(),
            customer_match: "AMBIGUOUS".into(),
        }
    }

    /// Every chunk of `rows` (header first), as the task cuts them.
    fn chunks(rows: &[deal_result::Model]) -> Vec<Vec<u8>> {
        let mut e = Encoder::default();
        let mut out = Vec::new();
        e.write([HEADER]).unwrap();
        // Pages of two rows.
        for page in rows.chunks(2) {
            e.write(page.iter().map(record)).unwrap();
            out.extend(std::iter::from_fn(|| e.full()));
        }
        out.push(e.rest());
        out
    }

    #[test]
    fn chunks_are_at_most_64_kib_and_join_into_the_csv() {
        // A name longer than a chunk, and values that need quoting.
        let long = "x".repeat(CHUNK + 10);
        let rows = [
            row("D1", "Lakehouse, \"phase 1\"\nsecond line", "bad, very"),
            row("D2", &long, ""),
            row("D3", "plain", ""),
        ];
        let chunks = chunks(&rows);
        assert!(chunks.len() >= 2, "{}", chunks.len());
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert!(chunks[..chunks.len() - 1].iter().all(|c| c.len() == CHUNK));
        let file = chunks.concat();
        let mut reader = csv::Reader::from_reader(file.as_slice());
        assert_eq!(reader.headers().unwrap(), HEADER.as_slice());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[0].iter().collect::<Vec<_>>(),
            [
                "D1",
                "Lakehouse, \"phase 1\"\nsecond line",
                "e1",
                "r1",
                "CO_SELL",
                "OUTBOUND",
                "bad, very",
                "AMBIGUOUS"
            ]
        );
        assert_eq!(&records[1][1], long);
        assert_eq!(&records[2][0], "D3");
    }

    #[test]
    fn an_empty_report_is_its_header() {
        let file = chunks(&[]).concat();
        assert_eq!(
            String::from_utf8(file).unwrap(),
            "psc_deal_id,deal_name,engagement_id,referral_id,deal_type,direction,error,customer_match\n"
        );
    }
}
