//! The PSC bulk export (`../shared/docs/PSC-EXPORT.md`): reading a bundle into typed records
//! with every problem reported (file, line, column, id, reason) and good rows kept.
//!
//! - [`csv`]: the RFC 4180 reader (quotes, line breaks in values, BOM, never panics).
//! - [`values`]: booleans, enums, timestamps, dates, amounts.
//! - [`files`]: the five files' columns and their rows as typed records.
//! - [`synthetic`]: a generated export of any size (crash test, benchmark).
//!
//! [`Bundle::read`] checks what spans files: duplicate ids, and rows that refer to an unknown
//! account or deal.

pub mod csv;
pub mod files;
pub mod synthetic;
pub mod values;

use std::collections::HashSet;
use std::io::BufRead;

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

/// A bundle read: the good rows of each file, and what was wrong.
#[derive(Debug, Default)]
pub struct Bundle {
    pub accounts: Vec<Account>,
    pub users: Vec<User>,
    pub deals: Vec<Deal>,
    pub products: Vec<DealProduct>,
    pub team: Vec<TeamMember>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

/// Where the files of a bundle come from: a folder, a zip, an upload.
pub trait Source {
    /// The file's bytes, `None` when the bundle does not have it.
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>>;
}

/// A folder on disk.
pub struct Folder(pub std::path::PathBuf);

impl Source for Folder {
    fn open(&self, name: &str) -> std::io::Result<Option<Box<dyn BufRead + '_>>> {
        match std::fs::File::open(self.0.join(name)) {
            Ok(f) => Ok(Some(Box::new(std::io::BufReader::new(f)))),
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

impl Bundle {
    /// Reads every file of the bundle. `accounts.csv` and `deals.csv` are required: without
    /// them (or with a required column missing) the bundle is refused with those issues.
    pub fn read(source: &dyn Source) -> Result<Bundle, Vec<Issue>> {
        let mut b = Bundle::default();
        let mut fatal = Vec::new();

        let mut account_ids = HashSet::new();
        b.read_file(source, &files::ACCOUNTS, true, &mut fatal, |b, row| {
            let a = files::account(row)?;
            if !account_ids.insert(a.id.clone()) {
                return Err(row.issue(
                    "PartnerAccountId",
                    "duplicate account id; the first row is kept",
                ));
            }
            b.accounts.push(a);
            Ok(())
        });
        let mut user_keys = HashSet::new();
        b.read_file(source, &files::USERS, false, &mut fatal, |b, row| {
            let u = files::user(row)?;
            if !account_ids.contains(&u.account_id) {
                return Err(row.issue(
                    "PartnerAccountId",
                    format!("unknown partner account `{}`", u.account_id),
                ));
            }
            if !user_keys.insert((u.email.to_lowercase(), u.account_id.clone())) {
                return Err(row.issue(
                    "UserEmail",
                    "this user appears twice for the account; the first row is kept",
                ));
            }
            b.users.push(u);
            Ok(())
        });
        let mut deal_ids = HashSet::new();
        b.read_file(source, &files::DEALS, true, &mut fatal, |b, row| {
            let d = files::deal(row)?;
            if !account_ids.contains(&d.account_id) {
                return Err(row.issue(
                    "PartnerAccountId",
                    format!("unknown partner account `{}`", d.account_id),
                ));
            }
            if !deal_ids.insert(d.id.clone()) {
                return Err(row.issue("DealId", "duplicate deal id; the first row is kept"));
            }
            b.deals.push(d);
            Ok(())
        });
        b.read_file(
            source,
            &files::DEAL_PRODUCTS,
            false,
            &mut fatal,
            |b, row| {
                let p = files::deal_product(row)?;
                if !deal_ids.contains(&p.deal_id) {
                    return Err(row.issue("DealId", format!("unknown deal `{}`", p.deal_id)));
                }
                b.products.push(p);
                Ok(())
            },
        );
        b.read_file(source, &files::DEAL_TEAM, false, &mut fatal, |b, row| {
            let t = files::team_member(row)?;
            if !deal_ids.contains(&t.deal_id) {
                return Err(row.issue("DealId", format!("unknown deal `{}`", t.deal_id)));
            }
            b.team.push(t);
            Ok(())
        });
        if fatal.is_empty() { Ok(b) } else { Err(fatal) }
    }

    /// Reads one file row by row into `take`; a row's issue is recorded and the row skipped.
    fn read_file(
        &mut self,
        source: &dyn Source,
        schema: &'static Schema,
        required: bool,
        fatal: &mut Vec<Issue>,
        mut take: impl FnMut(&mut Bundle, &files::Row) -> Result<(), Issue>,
    ) {
        let file_issue = |reason: String| Issue {
            file: schema.file.into(),
            line: 0,
            column: String::new(),
            id: String::new(),
            reason,
        };
        let input = match source.open(schema.file) {
            Ok(Some(input)) => input,
            Ok(None) if required => {
                fatal.push(file_issue(
                    "the bundle has no such file; it is required".into(),
                ));
                return;
            }
            Ok(None) => return,
            Err(e) => {
                fatal.push(file_issue(format!("cannot read the file: {e}")));
                return;
            }
        };
        let mut table = match Table::open(schema, input) {
            Ok(t) => t,
            Err(issue) => {
                fatal.push(issue);
                return;
            }
        };
        self.warnings.append(&mut table.warnings);
        while let Some(row) = table.next_row() {
            let result = row.and_then(|row| take(self, &row));
            if let Err(issue) = result {
                self.errors.push(issue);
            }
        }
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
        assert_eq!(deals, ["D1", "D2", "D3", "D7"]);
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
        assert_eq!(b.products.len(), 1);
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
            ("deals.csv", 6, "DealId", "D1"),
            ("deals.csv", 7, "PartnerAccountId", "D4"),
            ("deals.csv", 8, "DealValue", "D5"),
            ("deals.csv", 9, "", "D6"),
            ("deal_products.csv", 3, "DealId", "D9"),
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

    proptest! {
        #[test]
        fn any_deals_file_reads_without_panicking(text in "[A-Za-z0-9,\"\n :\\-.]{0,300}") {
            let deals = format!("DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source\n{text}");
            let _ = bundle(&[("accounts.csv", ACCOUNTS), ("deals.csv", &deals)]);
        }
    }
}
