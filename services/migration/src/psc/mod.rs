//! The PSC bulk export (`../shared/docs/PSC-EXPORT.md`): reading a bundle into typed records
//! with every problem reported (file, line, column, id, reason) and good rows kept.
//!
//! - [`csv`]: the RFC 4180 reader (quotes, line breaks in values, BOM, never panics).
//! - [`values`]: booleans, enums, timestamps, dates, amounts.
//! - [`files`]: the five files' columns and their rows as typed records.
//! - [`synthetic`]: a generated export of any size (crash test, benchmark).
//!
//! [`read`] streams a bundle's records file by file and checks what it can without holding
//! deals: duplicate accounts and users, and users or deals of an unknown account. What needs
//! every deal id (duplicate deals, products and team members of an unknown deal) is checked
//! where the deals are written (the store), so that memory stays flat however many deals an
//! export has. [`stream`] runs the reader on a blocking thread and hands records over in batches.
//!
//! What an import keeps of its problems is bounded too: [`ErrorList`] lists the first 1,000
//! errors of each file and counts the rest, and an issue quotes at most 500 characters of a
//! value.

pub mod csv;
pub mod files;
pub mod synthetic;
pub mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::sync::Arc;

use files::{Account, Deal, DealProduct, Schema, Table, TeamMember, User};

/// One problem of the bundle: an error (the row, or the file, is skipped) or a warning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub file: String,
    /// 1-based line the row starts on (0: the file as a whole).
    pub line: u64,
    /// The column at fault, as the schema names it (empty: the row or file as a whole).
    pub column: String,
    /// The row's deal id, user email or account id, when known.
    pub id: String,
    pub reason: String,
}

/// Errors listed per file; the rest are counted.
pub const MAX_LISTED_ERRORS: usize = 1000;
/// Characters an issue keeps of each of its texts (a value it names or quotes can be 64 KiB).
pub const MAX_ISSUE_CHARS: usize = 500;

impl Issue {
    /// The issue with each text cut to [`MAX_ISSUE_CHARS`].
    pub fn bounded(self) -> Issue {
        let cut = |s: String| {
            if s.chars().nth(MAX_ISSUE_CHARS).is_none() {
                s
            } else {
                let mut s: String = s.chars().take(MAX_ISSUE_CHARS).collect();
                s.push('…');
                s
            }
        };
        Issue {
            file: cut(self.file),
            line: self.line,
            column: cut(self.column),
            id: cut(self.id),
            reason: cut(self.reason),
        }
    }
}

/// The errors of a bundle as they are kept: the first [`MAX_LISTED_ERRORS`] of each file,
/// and how many more each file had.
#[derive(Debug, Default)]
pub struct ErrorList {
    listed: Vec<Issue>,
    per_file: HashMap<String, usize>,
    unlisted: BTreeMap<String, u64>,
}

impl ErrorList {
    pub fn push(&mut self, issue: Issue) {
        let listed = self.per_file.entry(issue.file.clone()).or_default();
        if *listed < MAX_LISTED_ERRORS {
            *listed += 1;
            self.listed.push(issue.bounded());
        } else {
            *self.unlisted.entry(issue.file).or_default() += 1;
        }
    }

    /// The listed errors, and per file the number not listed.
    pub fn into_parts(self) -> (Vec<Issue>, BTreeMap<String, u64>) {
        (self.listed, self.unlisted)
    }

    /// A warning per file with errors not listed, saying how many.
    pub fn unlisted_warnings(unlisted: &BTreeMap<String, u64>) -> Vec<Issue> {
        unlisted
            .iter()
            .map(|(file, n)| Issue {
                file: file.clone(),
                line: 0,
                column: String::new(),
                id: String::new(),
                reason: format!(
                    "{n} more rows of this file have errors; only the first {MAX_LISTED_ERRORS} are listed"
                ),
            })
            .collect()
    }
}

/// What reading a bundle yields, in file order: accounts, users, deals, products, team.
/// Deals, products and team members carry the line they start on, for the checks made later.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Account(Account),
    User(User),
    Deal(u64, Box<Deal>),
    Product(u64, DealProduct),
    Team(u64, TeamMember),
    Error(Issue),
    Warning(Issue),
}

impl Record {
    /// About how many bytes the record takes: what batches are measured by.
    pub fn size(&self) -> usize {
        let issue = |i: &Issue| i.file.len() + i.column.len() + i.id.len() + i.reason.len();
        let texts: usize = match self {
            Record::Account(a) => a.id.len() + a.name.len() + a.mpn_id.len(),
            Record::User(u) => {
                u.email.len() + u.first_name.len() + u.last_name.len() + u.account_id.len()
            }
            Record::Deal(_, d) => d.text_len(),
            Record::Product(_, p) => p.deal_id.len() + p.product_id.len() + p.product_name.len(),
            Record::Team(_, t) => {
                t.deal_id.len()
                    + t.first_name.len()
                    + t.last_name.len()
                    + t.email.len()
                    + t.phone.len()
            }
            Record::Error(i) | Record::Warning(i) => issue(i),
        };
        texts + std::mem::size_of::<Record>()
    }
}

/// Where the files of a bundle come from: a folder (an upload is spooled to one), in memory.
pub trait Source: Send + Sync {
    /// The file's bytes, `None` when the bundle does not have it.
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>>;
}

/// A folder on disk.
pub struct Folder(pub std::path::PathBuf);

impl Source for Folder {
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>> {
        match std::fs::File::open(self.0.join(name)) {
            Ok(f) => Ok(Some(Box::new(std::io::BufReader::with_capacity(
                1 << 16,
                f,
            )))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Files in memory, by name.
pub struct InMemory(pub Vec<(String, Vec<u8>)>);

impl Source for InMemory {
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>> {
        Ok(self
            .0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| Box::new(bytes.as_slice()) as Box<dyn BufRead>))
    }
}

/// The bundle's files in reading order, and whether each is required.
const FILES: [(&Schema, bool); 5] = [
    (&files::ACCOUNTS, true),
    (&files::USERS, false),
    (&files::DEALS, true),
    (&files::DEAL_PRODUCTS, false),
    (&files::DEAL_TEAM, false),
];

/// Checks that the required files are there with their required columns; the issues that
/// refuse the bundle otherwise. Run before [`read`], so that a refused bundle writes nothing.
pub fn check(source: &dyn Source) -> Result<(), Vec<Issue>> {
    let mut fatal = Vec::new();
    for (schema, required) in FILES {
        if let Some(input) = open(source, schema, required, &mut fatal)
            && let Err(issue) = Table::open(schema, input)
        {
            fatal.push(issue);
        }
    }
    if fatal.is_empty() { Ok(()) } else { Err(fatal) }
}

fn file_issue(schema: &Schema, reason: String) -> Issue {
    Issue {
        file: schema.file.into(),
        line: 0,
        column: String::new(),
        id: String::new(),
        reason,
    }
}

fn open<'a>(
    source: &'a dyn Source,
    schema: &Schema,
    required: bool,
    fatal: &mut Vec<Issue>,
) -> Option<Box<dyn BufRead + 'a>> {
    match source.open(schema.file) {
        Ok(Some(input)) => Some(input),
        Ok(None) if required => {
            fatal.push(file_issue(
                schema,
                "the bundle has no such file; it is required".into(),
            ));
            None
        }
        Ok(None) => None,
        Err(e) => {
            fatal.push(file_issue(schema, format!("cannot read the file: {e}")));
            None
        }
    }
}

/// Reads every file of the bundle, handing each record to `each` in file order; `each` returns
/// `false` to stop. A file that cannot be opened is one error record (call [`check`] first to
/// refuse such a bundle before anything is read).
pub fn read(source: &dyn Source, mut each: impl FnMut(Record) -> bool) {
    let mut accounts = HashSet::new();
    let mut users = HashSet::new();
    for (schema, required) in FILES {
        let mut fatal = Vec::new();
        let Some(input) = open(source, schema, required, &mut fatal) else {
            for issue in fatal {
                if !each(Record::Error(issue)) {
                    return;
                }
            }
            continue;
        };
        let mut table = match Table::open(schema, input) {
            Ok(t) => t,
            Err(issue) => {
                if !each(Record::Error(issue)) {
                    return;
                }
                continue;
            }
        };
        for w in std::mem::take(&mut table.warnings) {
            if !each(Record::Warning(w)) {
                return;
            }
        }
        while let Some(row) = table.next_row() {
            let record = row
                .and_then(|row| record(&row, &mut accounts, &mut users))
                .unwrap_or_else(Record::Error);
            if !each(record) {
                return;
            }
        }
    }
}

/// One row as a record, or its issue. `accounts` and `users` are those read so far.
fn record(
    row: &files::Row,
    accounts: &mut HashSet<String>,
    users: &mut HashSet<(String, String)>,
) -> Result<Record, Issue> {
    let known_account = |id: &str| {
        if accounts.contains(id) {
            Ok(())
        } else {
            Err(row.issue(
                "PartnerAccountId",
                format!("unknown partner account `{id}`"),
            ))
        }
    };
    Ok(match row.file {
        f if f == files::ACCOUNTS.file => {
            let a = files::account(row)?;
            if !accounts.insert(a.id.clone()) {
                return Err(row.issue(
                    "PartnerAccountId",
                    "duplicate account id; the first row is kept",
                ));
            }
            Record::Account(a)
        }
        f if f == files::USERS.file => {
            let u = files::user(row)?;
            known_account(&u.account_id)?;
            if !users.insert((u.email.to_lowercase(), u.account_id.clone())) {
                return Err(row.issue(
                    "UserEmail",
                    "this user appears twice for the account; the first row is kept",
                ));
            }
            Record::User(u)
        }
        f if f == files::DEALS.file => {
            let d = files::deal(row)?;
            known_account(&d.account_id)?;
            Record::Deal(row.line, Box::new(d))
        }
        f if f == files::DEAL_PRODUCTS.file => Record::Product(row.line, files::deal_product(row)?),
        _ => Record::Team(row.line, files::team_member(row)?),
    })
}

/// Records handed over per batch by [`stream`], at most...
const STREAM_BATCH: usize = 500;
/// ...and at most about this many bytes of them (a record can be 1 MiB).
const STREAM_BATCH_BYTES: usize = 4 << 20;

/// Checks the bundle ([`check`]) and then reads it on a blocking thread, handing its records
/// over in batches through a short queue, so that a slow consumer holds the reader back
/// rather than letting records pile up in memory: the queue holds a few batches of at most
/// [`STREAM_BATCH_BYTES`] each.
pub async fn stream(
    source: impl Source + 'static,
) -> Result<tokio::sync::mpsc::Receiver<Vec<Record>>, Vec<Issue>> {
    let source = Arc::new(source);
    let checked = source.clone();
    tokio::task::spawn_blocking(move || check(&*checked))
        .await
        .map_err(|e| vec![file_issue(&files::DEALS, format!("the reader failed: {e}"))])??;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(STREAM_BATCH);
        let mut bytes = 0;
        read(&*source, |r| {
            bytes += r.size();
            batch.push(r);
            if batch.len() < STREAM_BATCH && bytes < STREAM_BATCH_BYTES {
                return true;
            }
            bytes = 0;
            // A consumer that went away (the import failed) stops the reading.
            tx.blocking_send(std::mem::take(&mut batch)).is_ok()
        });
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    Ok(rx)
}

/// A bundle read whole: the records of each kind, and what was wrong. For tests and small
/// tools; the service streams ([`stream`]).
#[derive(Debug, Default)]
pub struct Bundle {
    pub accounts: Vec<Account>,
    pub users: Vec<User>,
    pub deals: Vec<Deal>,
    pub products: Vec<DealProduct>,
    pub team: Vec<TeamMember>,
    /// The first [`MAX_LISTED_ERRORS`] errors of each file...
    pub errors: Vec<Issue>,
    /// ...and per file how many more there were.
    pub unlisted_errors: BTreeMap<String, u64>,
    pub warnings: Vec<Issue>,
}

impl Bundle {
    /// Checks and reads the whole bundle (without the checks that need the deals written).
    pub fn read(source: &dyn Source) -> Result<Bundle, Vec<Issue>> {
        check(source)?;
        let mut b = Bundle::default();
        let mut errors = ErrorList::default();
        read(source, |r| {
            match r {
                Record::Account(a) => b.accounts.push(a),
                Record::User(u) => b.users.push(u),
                Record::Deal(_, d) => b.deals.push(*d),
                Record::Product(_, p) => b.products.push(p),
                Record::Team(_, t) => b.team.push(t),
                Record::Error(i) => errors.push(i),
                Record::Warning(i) => b.warnings.push(i.bounded()),
            }
            true
        });
        (b.errors, b.unlisted_errors) = errors.into_parts();
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bundle(files: &[(&str, &str)]) -> Result<Bundle, Vec<Issue>> {
        Bundle::read(&InMemory(
            files
                .iter()
                .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
                .collect(),
        ))
    }

    const ACCOUNTS: &str = "\u{feff}Partner Account Id,partner_account_name,MPNID,Region\r\n\
        A1,Contoso US,4000002,West\r\n\
        A2,\"Contoso, Berlin\",4000003,EU\r\n\
        A1,Contoso again,4000001,West\r\n\
        A3,Bad,12ab,EU\r\n";

    const DEALS: &str = "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,PartnerNotes,DealValue,Currency\n\
        D1,Before 2020,A1,Open,2019-12-31T23:59:59Z,no,Partner,,100,USD\n\
        D2,New Year,A1,open,2020-01-01T00:00:00Z,yes,Microsoft,\"line one\nline \"\"two\"\", with a comma\",99.5,eur\n\
        D3,Offset,A2,Open,2020-01-01T00:30:00+01:00,1,partner,,,\n\
        D1,Duplicate,A1,Open,2021-01-01 10:00:00,no,Partner,,,\n\
        D4,Nobody's,A9,Open,2021-01-01T00:00:00Z,no,Partner,,,\n\
        D5,Bad value,A1,Open,2021-01-01T00:00:00Z,no,Partner,,12.345,USD\n\
        D6,Too few,A1\n\
        \n\
        D7,Won one,A2,Won,2021-06-01T00:00:00Z,n,Partner,,,\n";

    #[test]
    fn a_bundle_with_every_kind_of_row_problem() {
        let b = bundle(&[
            ("accounts.csv", ACCOUNTS),
            ("deals.csv", DEALS),
            (
                "users.csv",
                "UserEmail,PartnerAccountId,Role\nada@contoso.com,A1,Admin\nbob@gmail.com,A2,Deal manager\nada@contoso.com,A1,Seller\ncy@contoso.com,A1,Owner\n",
            ),
            (
                "deal_products.csv",
                "DealId,ProductId,Quantity\nD2,P-1,3\nD9,P-2,1\nD2,P-3,0\n",
            ),
            ("deal_team.csv", "DealId,Email\nD2,rita@contoso.com\nD1,\n"),
        ])
        .unwrap();
        // Good rows are kept.
        let accounts: Vec<&str> = b.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(accounts, ["Contoso US", "Contoso, Berlin"]);
        let deals: Vec<&str> = b.deals.iter().map(|d| d.id.as_str()).collect();
        // The duplicate D1 is found where deals are written (the store's tests).
        assert_eq!(deals, ["D1", "D2", "D3", "D1", "D7"]);
        let d2 = &b.deals[1];
        assert_eq!(d2.notes, "line one\nline \"two\", with a comma");
        assert_eq!(d2.value, Some((9950, "EUR".into())));
        assert!(d2.co_sell);
        assert_eq!(d2.source, files::Source::Microsoft);
        // The 2020 boundary, with an offset that crosses it.
        let boundary = values::timestamp("2020-01-01T00:00:00Z").unwrap();
        assert!(b.deals[0].created < boundary);
        assert!(b.deals[1].created >= boundary);
        assert!(b.deals[2].created < boundary, "00:30+01:00 is 2019 in UTC");
        assert_eq!(b.users.len(), 2);
        assert_eq!(b.users[1].role, files::PscRole::DealManager);
        // D9's product too: unknown deals are found where deals are written.
        assert_eq!(b.products.len(), 2);
        assert_eq!(b.team.len(), 2);

        // Every problem: file, line, column, id and reason.
        let got: Vec<(String, u64, String, String)> = b
            .errors
            .iter()
            .map(|i| (i.file.clone(), i.line, i.column.clone(), i.id.clone()))
            .collect();
        let want = [
            ("accounts.csv", 4, "PartnerAccountId", "A1"),
            ("accounts.csv", 5, "MpnId", "A3"),
            ("users.csv", 4, "UserEmail", "ada@contoso.com"),
            ("users.csv", 5, "Role", "cy@contoso.com"),
            ("deals.csv", 7, "PartnerAccountId", "D4"),
            ("deals.csv", 8, "DealValue", "D5"),
            ("deals.csv", 9, "", "D6"),
            ("deal_products.csv", 4, "Quantity", "D2"),
        ];
        let want: Vec<(String, u64, String, String)> = want
            .iter()
            .map(|(f, l, c, i)| (f.to_string(), *l, c.to_string(), i.to_string()))
            .collect();
        assert_eq!(got, want, "{:#?}", b.errors);
        assert!(b.errors.iter().all(|i| !i.reason.is_empty()));
        // Unknown columns are warnings.
        assert_eq!(b.warnings.len(), 1);
        assert_eq!(b.warnings[0].column, "Region");
    }

    #[test]
    fn required_files_and_columns() {
        let err = bundle(&[("accounts.csv", ACCOUNTS)]).unwrap_err();
        assert_eq!(err[0].file, "deals.csv");
        let err = bundle(&[
            ("accounts.csv", "PartnerAccountId,MpnId\nA1,4000001\n"),
            ("deals.csv", DEALS),
        ])
        .unwrap_err();
        assert_eq!(err[0].file, "accounts.csv");
        assert_eq!(err[0].column, "PartnerAccountName");
    }

    #[test]
    fn the_first_1000_errors_of_a_file_are_listed_and_the_rest_counted() {
        let long_id = "D".repeat(5000);
        let mut deals =
            String::from("DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n");
        deals.push_str(&format!(
            "{long_id},Bad status,A1,Nope,2021-01-01T00:00:00Z,no,Partner\n"
        ));
        for i in 0..2499 {
            deals.push_str(&format!("D{i},Bad date,A1,Open,yesterday,no,Partner\n"));
        }
        deals.push_str("OK1,Fine,A1,Open,2021-01-01T00:00:00Z,no,Partner\n");
        let accounts =
            "PartnerAccountId,PartnerAccountName,MpnId\nA1,One,4000002\nA1,Twice,4000002\n";
        let b = bundle(&[("accounts.csv", accounts), ("deals.csv", &deals)]).unwrap();
        assert_eq!(b.deals.len(), 1);
        let of = |file: &str| b.errors.iter().filter(|i| i.file == file).count();
        assert_eq!(of("deals.csv"), MAX_LISTED_ERRORS);
        assert_eq!(
            of("accounts.csv"),
            1,
            "another file's errors are listed apart"
        );
        assert_eq!(
            b.unlisted_errors,
            BTreeMap::from([("deals.csv".to_string(), 1500)])
        );
        // The first ones are listed, in order; a long value is quoted in part.
        assert_eq!(b.errors[1].line, 2);
        assert_eq!(b.errors[1].id.chars().count(), MAX_ISSUE_CHARS + 1);
        assert!(b.errors[1].id.ends_with('…'));
        assert_eq!(b.errors.last().unwrap().line, 1001);
    }

    #[test]
    fn ids_are_at_most_100_characters() {
        let (ok, long) = ("d".repeat(100), "d".repeat(101));
        let deals = format!(
            "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n\
             {ok},Fine,A1,Open,2021-01-01T00:00:00Z,no,Partner\n\
             {long},Long,A1,Open,2021-01-01T00:00:00Z,no,Partner\n"
        );
        let accounts = format!(
            "PartnerAccountId,PartnerAccountName,MpnId\nA1,One,4000002\n{long},Two,4000002\n"
        );
        let b = bundle(&[("accounts.csv", &accounts), ("deals.csv", &deals)]).unwrap();
        assert_eq!(b.deals.len(), 1);
        assert_eq!(b.deals[0].id, ok);
        let columns: Vec<(&str, &str)> = b
            .errors
            .iter()
            .map(|i| (i.file.as_str(), i.column.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("accounts.csv", "PartnerAccountId"),
                ("deals.csv", "DealId")
            ]
        );
        assert!(b.errors[1].reason.contains("longer than 100 characters"));
    }

    #[tokio::test]
    async fn batches_are_bounded_by_bytes_as_well_as_by_records() {
        // Deals of about 840 KB each (14 values of 60 KiB).
        let big = "n".repeat(60 * 1024);
        let mut deals = String::from(
            "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,PartnerNotes,\
             CustomerOutcome,DealRole,LicensingProgram,CustomerName,CustomerAddressLine1,\
             CustomerCity,CustomerRegion,CustomerPostalCode,ContactFirstName,ContactLastName,\
             ContactPhone,ContactEmail,AssignedSellerEmail,CustomerCountry\n",
        );
        for i in 0..12 {
            let fat = vec![big.as_str(); 14].join(",");
            deals.push_str(&format!(
                "D{i},Fat,A1,Open,2021-01-01T00:00:00Z,no,Partner,{fat},NO\n"
            ));
        }
        let accounts = "PartnerAccountId,PartnerAccountName,MpnId\nA1,One,4000002\n";
        let mut batches = stream(InMemory(vec![
            ("accounts.csv".into(), accounts.as_bytes().to_vec()),
            ("deals.csv".into(), deals.into_bytes()),
        ]))
        .await
        .unwrap();
        let mut deals = 0;
        while let Some(batch) = batches.recv().await {
            let bytes: usize = batch.iter().map(Record::size).sum();
            assert!(
                bytes < STREAM_BATCH_BYTES + (1 << 20),
                "a batch of {bytes} bytes"
            );
            deals += batch
                .iter()
                .filter(|r| matches!(r, Record::Deal(..)))
                .count();
        }
        assert_eq!(deals, 12);
    }

    proptest! {
        #[test]
        fn any_deals_file_reads_without_panicking(text in "[A-Za-z0-9,\"\n :\\-.]{0,300}") {
            let deals = format!("DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n{text}");
            let _ = bundle(&[("accounts.csv", ACCOUNTS), ("deals.csv", &deals)]);
        }
    }
}
