//! The files of a PSC export bundle: their columns (matched by folded name, any order), and each
//! row parsed into a typed record or one issue naming the file, line, column, id and reason.

use std::io::BufRead;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::Issue;
use super::csv::{BadRecord, Reader};
use super::values::{boolean, cents, date, fold, one_of, timestamp};

pub struct Column {
    pub name: &'static str,
    pub required: bool,
}

const fn req(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}

const fn opt(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

pub struct Schema {
    pub file: &'static str,
    pub columns: &'static [Column],
    /// The column whose value names a row in the report (deal id, user email, ...).
    pub id: &'static str,
}

pub const ACCOUNTS: Schema = Schema {
    file: "accounts.csv",
    columns: &[
        req("PartnerAccountId"),
        req("PartnerAccountName"),
        req("MpnId"),
    ],
    id: "PartnerAccountId",
};

pub const USERS: Schema = Schema {
    file: "users.csv",
    columns: &[
        req("UserEmail"),
        opt("FirstName"),
        opt("LastName"),
        req("PartnerAccountId"),
        req("Role"),
    ],
    id: "UserEmail",
};

pub const DEALS: Schema = Schema {
    file: "deals.csv",
    columns: &[
        req("DealId"),
        req("DealName"),
        req("PartnerAccountId"),
        req("Status"),
        req("CreatedDate"),
        opt("LastModifiedDate"),
        req("IsCoSell"),
        req("Source"),
        opt("Program"),
        opt("DealRegistrationStatus"),
        opt("AssignedSellerEmail"),
        opt("CustomerName"),
        opt("CustomerAddressLine1"),
        opt("CustomerCity"),
        opt("CustomerRegion"),
        opt("CustomerPostalCode"),
        opt("CustomerCountry"),
        opt("ContactFirstName"),
        opt("ContactLastName"),
        opt("ContactEmail"),
        opt("ContactPhone"),
        opt("DealValue"),
        opt("Currency"),
        opt("EstimatedCloseDate"),
        opt("PartnerNotes"),
        opt("CustomerOutcome"),
        opt("DealRole"),
        opt("LicensingProgram"),
    ],
    id: "DealId",
};

pub const DEAL_PRODUCTS: Schema = Schema {
    file: "deal_products.csv",
    columns: &[
        req("DealId"),
        req("ProductId"),
        opt("ProductName"),
        opt("Quantity"),
        opt("UnitPrice"),
    ],
    id: "DealId",
};

pub const DEAL_TEAM: Schema = Schema {
    file: "deal_team.csv",
    columns: &[
        req("DealId"),
        opt("FirstName"),
        opt("LastName"),
        opt("Email"),
        opt("Phone"),
    ],
    id: "DealId",
};

/// Longest id (deal, partner account) accepted: what the deals service takes as a PSC deal id,
/// and what keeps the ids a client sends back (page tokens, corrections) short.
pub const MAX_ID_CHARS: usize = 100;

/// A file being read: its header resolved against the schema.
pub struct Table<R> {
    schema: &'static Schema,
    reader: Reader<R>,
    /// For each schema column, its position in the file's records.
    positions: Vec<Option<usize>>,
    width: usize,
    /// Unknown columns, reported and ignored.
    pub warnings: Vec<Issue>,
}

/// One data row, its values by schema column.
pub struct Row {
    pub file: &'static str,
    pub line: u64,
    schema: &'static Schema,
    values: Vec<Option<String>>,
}

impl Row {
    /// The value of `column`, `None` when absent or empty.
    pub fn get(&self, column: &str) -> Option<&str> {
        let i = self.schema.columns.iter().position(|c| c.name == column)?;
        self.values[i].as_deref().filter(|v| !v.is_empty())
    }

    pub fn id(&self) -> String {
        self.get(self.schema.id).unwrap_or_default().to_owned()
    }

    pub fn issue(&self, column: &str, reason: impl Into<String>) -> Issue {
        Issue {
            file: self.file.into(),
            line: self.line,
            column: column.into(),
            id: self.id(),
            reason: reason.into(),
        }
    }

    /// A required value (the header check guarantees the column; the value may still be empty).
    pub fn required(&self, column: &str) -> Result<&str, Issue> {
        self.get(column)
            .ok_or_else(|| self.issue(column, "is required but empty"))
    }

    /// A required id: at most [`MAX_ID_CHARS`] characters.
    pub fn id_value(&self, column: &str) -> Result<&str, Issue> {
        let id = self.required(column)?;
        if id.chars().count() > MAX_ID_CHARS {
            return Err(self.issue(
                column,
                format!(
                    "is longer than {MAX_ID_CHARS} characters (an id is at most {MAX_ID_CHARS})"
                ),
            ));
        }
        Ok(id)
    }

    /// An optional value parsed by `parse`.
    pub fn parsed<T>(
        &self,
        column: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Issue> {
        self.get(column)
            .map(|v| parse(v).map_err(|e| self.issue(column, e)))
            .transpose()
    }

    pub fn text(&self, column: &str) -> String {
        self.get(column).unwrap_or_default().to_owned()
    }
}

impl<R: BufRead> Table<R> {
    /// Reads the header. A missing required column, or no header at all, rejects the file.
    pub fn open(schema: &'static Schema, input: R) -> Result<Self, Issue> {
        let file_issue = |line: u64, column: &str, reason: String| Issue {
            file: schema.file.into(),
            line,
            column: column.into(),
            id: String::new(),
            reason,
        };
        let mut reader = Reader::new(input);
        let header = match reader.next_record() {
            None => {
                return Err(file_issue(
                    1,
                    "",
                    "the file is empty: a header row is required".into(),
                ));
            }
            Some(Err(e)) => return Err(file_issue(1, "", format!("cannot read the file: {e}"))),
            Some(Ok(Err(bad))) => {
                return Err(file_issue(
                    bad.line,
                    "",
                    format!("bad header: {}", bad.reason),
                ));
            }
            Some(Ok(Ok(h))) => h,
        };
        let folded: Vec<String> = header.values.iter().map(|h| fold(h)).collect();
        let positions: Vec<Option<usize>> = schema
            .columns
            .iter()
            .map(|c| folded.iter().position(|h| *h == fold(c.name)))
            .collect();
        let missing: Vec<&str> = schema
            .columns
            .iter()
            .zip(&positions)
            .filter(|(c, p)| c.required && p.is_none())
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            return Err(file_issue(
                header.line,
                missing[0],
                format!("required column(s) missing: {}", missing.join(", ")),
            ));
        }
        let warnings = header
            .values
            .iter()
            .enumerate()
            .filter(|(i, _)| !positions.contains(&Some(*i)))
            .map(|(_, name)| file_issue(header.line, name, "unknown column, ignored".into()))
            .collect();
        Ok(Self {
            schema,
            reader,
            positions,
            width: header.values.len(),
            warnings,
        })
    }

    /// The next data row or the issue that spoils it; `None` at the end. A read error of the
    /// input ends the file with an issue.
    pub fn next_row(&mut self) -> Option<Result<Row, Issue>> {
        let record = match self.reader.next_record()? {
            Err(e) => {
                return Some(Err(Issue {
                    file: self.schema.file.into(),
                    line: 0,
                    column: String::new(),
                    id: String::new(),
                    reason: format!("cannot read the file: {e}"),
                }));
            }
            Ok(Err(BadRecord {
                line,
                position,
                reason,
            })) => {
                let column = position
                    .and_then(|p| self.positions.iter().position(|x| *x == Some(p - 1)))
                    .map(|i| self.schema.columns[i].name.to_owned())
                    .unwrap_or_default();
                return Some(Err(Issue {
                    file: self.schema.file.into(),
                    line,
                    column,
                    id: String::new(),
                    reason,
                }));
            }
            Ok(Ok(r)) => r,
        };
        let values: Vec<Option<String>> = self
            .positions
            .iter()
            .map(|p| p.and_then(|p| record.values.get(p).cloned()))
            .collect();
        let row = Row {
            file: self.schema.file,
            line: record.line,
            schema: self.schema,
            values,
        };
        if record.values.len() != self.width {
            return Some(Err(row.issue(
                "",
                format!(
                    "has {} values; the header has {} columns",
                    record.values.len(),
                    self.width
                ),
            )));
        }
        Some(Ok(row))
    }
}

// --- the typed records ---

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub mpn_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PscRole {
    Admin,
    DealManager,
    Seller,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub account_id: String,
    pub role: PscRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Microsoft,
    Partner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Program {
    Standard,
    SolutionAssessment,
    OemLicensing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Registration {
    None,
    InProgress,
    Registered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub status: DealStatus,
    pub created: DateTime<Utc>,
    pub last_modified: Option<DateTime<Utc>>,
    pub co_sell: bool,
    pub source: Source,
    pub program: Program,
    pub registration: Registration,
    pub assigned_seller_email: String,
    pub customer_name: String,
    pub customer_address_line1: String,
    pub customer_city: String,
    pub customer_region: String,
    pub customer_postal_code: String,
    pub customer_country: String,
    pub contact_first_name: String,
    pub contact_last_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    /// Deal value in hundredths, with its currency.
    pub value: Option<(i64, String)>,
    pub estimated_close_date: Option<NaiveDate>,
    pub notes: String,
    pub customer_outcome: String,
    pub deal_role: String,
    pub licensing_program: String,
}

impl Deal {
    /// The bytes of its texts.
    pub fn text_len(&self) -> usize {
        [
            &self.id,
            &self.name,
            &self.account_id,
            &self.assigned_seller_email,
            &self.customer_name,
            &self.customer_address_line1,
            &self.customer_city,
            &self.customer_region,
            &self.customer_postal_code,
            &self.customer_country,
            &self.contact_first_name,
            &self.contact_last_name,
            &self.contact_email,
            &self.contact_phone,
            &self.notes,
            &self.customer_outcome,
            &self.deal_role,
            &self.licensing_program,
        ]
        .iter()
        .map(|s| s.len())
        .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DealProduct {
    pub deal_id: String,
    pub product_id: String,
    pub product_name: String,
    pub quantity: Option<u32>,
    pub unit_price_cents: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub deal_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
}

pub fn account(r: &Row) -> Result<Account, Issue> {
    let mpn =
        cosell_platform::names::mpn_id(r.required("MpnId")?).map_err(|e| r.issue("MpnId", e))?;
    Ok(Account {
        id: r.id_value("PartnerAccountId")?.to_owned(),
        name: r.required("PartnerAccountName")?.to_owned(),
        mpn_id: mpn,
    })
}

pub fn user(r: &Row) -> Result<User, Issue> {
    let roles = ["Admin", "DealManager", "Seller"];
    let role = match one_of(r.required("Role")?, &roles).map_err(|e| r.issue("Role", e))? {
        0 => PscRole::Admin,
        1 => PscRole::DealManager,
        _ => PscRole::Seller,
    };
    Ok(User {
        email: r.required("UserEmail")?.to_owned(),
        first_name: r.text("FirstName"),
        last_name: r.text("LastName"),
        account_id: r.id_value("PartnerAccountId")?.to_owned(),
        role,
    })
}

pub fn deal(r: &Row) -> Result<Deal, Issue> {
    let id = r.id_value("DealId")?.to_owned();
    let status = match one_of(r.required("Status")?, &["Open", "Won", "Lost", "Closed"])
        .map_err(|e| r.issue("Status", e))?
    {
        0 => DealStatus::Open,
        1 => DealStatus::Won,
        2 => DealStatus::Lost,
        _ => DealStatus::Closed,
    };
    let created = timestamp(r.required("CreatedDate")?).map_err(|e| r.issue("CreatedDate", e))?;
    let co_sell = boolean(r.required("IsCoSell")?).map_err(|e| r.issue("IsCoSell", e))?;
    let source = match one_of(r.required("Source")?, &["Microsoft", "Partner"])
        .map_err(|e| r.issue("Source", e))?
    {
        0 => Source::Microsoft,
        _ => Source::Partner,
    };
    let program = match r.parsed("Program", |v| {
        one_of(v, &["Standard", "SolutionAssessment", "OemLicensing"])
    })? {
        None | Some(0) => Program::Standard,
        Some(1) => Program::SolutionAssessment,
        Some(_) => Program::OemLicensing,
    };
    let registration = match r.parsed("DealRegistrationStatus", |v| {
        one_of(v, &["None", "InProgress", "Registered"])
    })? {
        None | Some(0) => Registration::None,
        Some(1) => Registration::InProgress,
        Some(_) => Registration::Registered,
    };
    let country = r.text("CustomerCountry");
    let country_ok = country.is_empty()
        || (country.len() == 2 && country.bytes().all(|b| b.is_ascii_alphabetic()));
    if !country_ok {
        return Err(r.issue(
            "CustomerCountry",
            format!("`{country}` is not an ISO 3166-1 alpha-2 country code"),
        ));
    }
    let value = match r.parsed("DealValue", cents)? {
        None => None,
        Some(cents) => {
            let currency = r
                .get("Currency")
                .ok_or_else(|| r.issue("Currency", "is required when DealValue is given"))?;
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(r.issue(
                    "Currency",
                    format!("`{currency}` is not an ISO 4217 currency code"),
                ));
            }
            Some((cents, currency.to_ascii_uppercase()))
        }
    };
    Ok(Deal {
        id,
        name: r.required("DealName")?.to_owned(),
        account_id: r.id_value("PartnerAccountId")?.to_owned(),
        status,
        created,
        last_modified: r.parsed("LastModifiedDate", timestamp)?,
        co_sell,
        source,
        program,
        registration,
        assigned_seller_email: r.text("AssignedSellerEmail"),
        customer_name: r.text("CustomerName"),
        customer_address_line1: r.text("CustomerAddressLine1"),
        customer_city: r.text("CustomerCity"),
        customer_region: r.text("CustomerRegion"),
        customer_postal_code: r.text("CustomerPostalCode"),
        customer_country: country.to_ascii_uppercase(),
        contact_first_name: r.text("ContactFirstName"),
        contact_last_name: r.text("ContactLastName"),
        contact_email: r.text("ContactEmail"),
        contact_phone: r.text("ContactPhone"),
        value,
        estimated_close_date: r.parsed("EstimatedCloseDate", date)?,
        notes: r.text("PartnerNotes"),
        customer_outcome: r.text("CustomerOutcome"),
        deal_role: r.text("DealRole"),
        licensing_program: r.text("LicensingProgram"),
    })
}

pub fn deal_product(r: &Row) -> Result<DealProduct, Issue> {
    let quantity = r.parsed("Quantity", |v| {
        v.parse::<u32>()
            .ok()
            .filter(|q| *q > 0)
            .ok_or_else(|| format!("`{v}` is not a positive integer"))
    })?;
    Ok(DealProduct {
        deal_id: r.id_value("DealId")?.to_owned(),
        product_id: r.required("ProductId")?.to_owned(),
        product_name: r.text("ProductName"),
        quantity,
        unit_price_cents: r.parsed("UnitPrice", cents)?,
    })
}

pub fn team_member(r: &Row) -> Result<TeamMember, Issue> {
    Ok(TeamMember {
        deal_id: r.id_value("DealId")?.to_owned(),
        first_name: r.text("FirstName"),
        last_name: r.text("LastName"),
        email: r.text("Email"),
        phone: r.text("Phone"),
    })
}
