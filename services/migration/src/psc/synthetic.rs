//! A generated PSC export of any size for the demo organization Contoso, for the crash test and
//! the benchmark. Written file by file, row by row, so that a million deals need no memory.
//!
//! Nine deals in ten migrate (open, created after 2020, in an account whose MPN association
//! holds); every tenth is won, and so stays behind. Deals carry a customer, a contact, a product
//! and a team member, like a real export.

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Contoso's accounts in the demo identity data: a location (4000002) and the whole
/// organization (4000001).
const ACCOUNTS: [(&str, &str, &str); 2] = [
    ("PSC-ACC-SEA", "Contoso Seattle", "4000002"),
    ("PSC-ACC-GLOBAL", "Contoso (global)", "4000001"),
];

/// The kinds of customer: a name as PSC users type it (without the legal form), the legal form
/// the directory's entity carries, city, country.
const CUSTOMERS: [(&str, &str, &str, &str); 4] = [
    ("Northwind Traders", "AS", "Oslo", "NO"),
    ("Tailspin Toys", "AS", "Bergen", "NO"),
    ("Fabrikam Bank", "Inc.", "Seattle", "US"),
    ("Wide World Importers", "Limited", "Dublin", "IE"),
];

/// Distinct customers, at most: at 100,000 deals each has five, so that the directory is asked
/// about as many customers as a large partner has.
pub const CUSTOMER_COUNT: usize = 20_000;

/// The customer of generated deal `i` as PSC names it: (name, city, country).
pub fn customer(i: usize) -> (String, &'static str, &'static str) {
    let c = i % CUSTOMER_COUNT;
    let (name, _, city, country) = CUSTOMERS[c % CUSTOMERS.len()];
    (format!("{name} {c}"), city, country)
}

/// Writes, in GLEIF's columns, the directory entities of the customers of a `deals`-deal
/// export, as a real directory holds them: most customers are one entity (the legal form
/// spelled out), one in ten is no entity, one in twenty is two entities of one name and city.
pub fn write_customers(out: &mut impl Write, deals: usize) -> io::Result<()> {
    writeln!(
        out,
        "LEI,Entity.LegalName,Entity.LegalAddress.City,Entity.LegalAddress.Country"
    )?;
    for c in 0..deals.min(CUSTOMER_COUNT) {
        let (name, form, city, country) = CUSTOMERS[c % CUSTOMERS.len()];
        let legal = format!("{} {c} {}", name.to_uppercase(), form.to_uppercase());
        match c % 20 {
            3 | 13 => {}
            7 => {
                writeln!(out, "5493{c:014}AA,\"{legal}\",{city},{country}")?;
                writeln!(out, "5493{c:014}BB,\"{legal}\",{city},{country}")?;
            }
            _ => writeln!(out, "5493{c:014}AA,\"{legal}\",{city},{country}")?,
        }
    }
    Ok(())
}

/// The id of generated deal `i` (0-based): ids sort as numbers do.
pub fn deal_id(i: usize) -> String {
    format!("GEN-{i:08}")
}

/// Whether generated deal `i` is eligible to migrate.
pub fn eligible(i: usize) -> bool {
    i % 10 != 9
}

/// Writes `accounts.csv`, `deals.csv`, `deal_products.csv` and `deal_team.csv` with `deals`
/// deals into `dir` (created if missing).
pub fn write(dir: &Path, deals: usize) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let file = |name: &str| -> io::Result<BufWriter<std::fs::File>> {
        Ok(BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(dir.join(name))?,
        ))
    };
    let mut accounts = file("accounts.csv")?;
    writeln!(accounts, "PartnerAccountId,PartnerAccountName,MpnId")?;
    for (id, name, mpn) in ACCOUNTS {
        writeln!(accounts, "{id},{name},{mpn}")?;
    }
    accounts.flush()?;

    let mut d = file("deals.csv")?;
    writeln!(
        d,
        "DealId,DealName,PartnerAccountId,Status,CreatedDate,IsCoSell,Source,CustomerName,\
         CustomerCity,CustomerCountry,ContactFirstName,ContactLastName,ContactEmail,DealValue,\
         Currency,EstimatedCloseDate,PartnerNotes"
    )?;
    let mut products = file("deal_products.csv")?;
    writeln!(products, "DealId,ProductId,ProductName,Quantity")?;
    let mut team = file("deal_team.csv")?;
    writeln!(team, "DealId,FirstName,LastName,Email,Phone")?;
    for i in 0..deals {
        let id = deal_id(i);
        let account = ACCOUNTS[i % ACCOUNTS.len()].0;
        let (name, city, country) = customer(i);
        let status = if eligible(i) { "Open" } else { "Won" };
        let co_sell = if i % 3 == 0 { "yes" } else { "no" };
        let day = 1 + i % 28;
        writeln!(
            d,
            "{id},\"Deal {i}, generated\",{account},{status},2022-03-{day:02}T10:00:00Z,{co_sell},\
             Partner,{name},{city},{country},Cy,Contact,cy{i}@customer.example,{}.00,USD,\
             2027-06-30,\"Generated notes with \"\"quotes\"\"\"",
            1000 + i % 9000
        )?;
        writeln!(products, "{id},PSC-PROD-ANALYTICS,Contoso Analytics,1")?;
        writeln!(
            team,
            "{id},Rita,Referrals,rita.referrals@contoso.com,+1 425 555 0101"
        )?;
    }
    d.flush()?;
    products.flush()?;
    team.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::psc::{Bundle, Folder};

    #[test]
    fn a_generated_export_reads_without_issues() {
        let dir = std::env::temp_dir().join(format!("cosell-synthetic-{}", uuid::Uuid::now_v7()));
        write(&dir, 50).unwrap();
        let b = Bundle::read(&Folder(dir.clone())).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(b.errors.is_empty(), "{:?}", b.errors);
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        assert_eq!(b.deals.len(), 50);
        assert_eq!(b.deals[7].id, deal_id(7));
        assert_eq!(b.deals[7].name, "Deal 7, generated");
        assert_eq!(b.products.len(), 50);
        assert_eq!(b.team.len(), 50);
        let won = b
            .deals
            .iter()
            .filter(|d| d.status == crate::psc::files::DealStatus::Won)
            .count();
        assert_eq!(won, (0..50).filter(|i| !eligible(*i)).count());
        assert_eq!(b.deals[7].customer_name, "Wide World Importers 7");
    }

    #[test]
    fn the_customers_are_one_entity_or_none_or_two() {
        let mut out = Vec::new();
        write_customers(&mut out, 40).unwrap();
        let mut rows = csv::Reader::from_reader(out.as_slice());
        let names: Vec<String> = rows.records().map(|r| r.unwrap()[1].to_owned()).collect();
        // 40 customers: 4 without an entity (3, 13, 23, 33), 2 with two (7, 27).
        assert_eq!(names.len(), 40 - 4 + 2);
        assert_eq!(names[0], "NORTHWIND TRADERS 0 AS");
        assert!(
            !names
                .iter()
                .any(|n| n.contains(" 3 ") || n.contains(" 13 "))
        );
        let twice = names
            .iter()
            .filter(|n| *n == "WIDE WORLD IMPORTERS 7 LIMITED")
            .count();
        assert_eq!(twice, 2);
    }
}
