//! The PSC export reader on any bytes: the input is the bundle's five files in reading order
//! (accounts, users, deals, deal products, deal team), separated by 0xFF (a byte UTF-8 never
//! uses, so a file can still hold any text and any bad encoding). A file the input stops
//! before is missing from the bundle.
//!
//! The reader must never panic, whatever it is given, and what it reports must stay within
//! the bounds an import relies on: `check` refuses or passes the bundle, `read` yields each
//! record once, in file order, every issue names a file of the bundle, its line is within the
//! file, and an issue's texts are cut to their limit once they are kept.
#![no_main]

use cosell_migration::psc::{self, ErrorList, InMemory, MAX_ISSUE_CHARS, Record, files};
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 5] = [
    files::ACCOUNTS.file,
    files::USERS.file,
    files::DEALS.file,
    files::DEAL_PRODUCTS.file,
    files::DEAL_TEAM.file,
];

/// Characters a kept issue's text may have: the limit and its ellipsis.
const KEPT_CHARS: usize = MAX_ISSUE_CHARS + 1;

fuzz_target!(|data: &[u8]| {
    let source = InMemory(
        data.split(|b| *b == 0xFF)
            .zip(FILES)
            .map(|(bytes, name)| (name.to_owned(), bytes.to_vec()))
            .collect(),
    );
    let lines = |name: &str| {
        let file = source.0.iter().find(|(n, _)| n == name);
        file.map_or(0, |(_, b)| {
            b.iter().filter(|c| **c == b'\n').count() as u64 + 1
        })
    };
    let _ = psc::check(&source);

    let mut errors = ErrorList::default();
    let mut file_order = 0;
    psc::read(&source, |record| {
        let issue = match &record {
            Record::Error(i) | Record::Warning(i) => Some(i.clone()),
            _ => None,
        };
        if let Some(issue) = issue {
            let at = FILES
                .iter()
                .position(|f| *f == issue.file)
                .unwrap_or_else(|| panic!("an issue names no file of the bundle: {issue:?}"));
            assert!(at >= file_order, "issues out of file order: {issue:?}");
            file_order = at;
            assert!(
                issue.line <= lines(&issue.file),
                "line {} is past the end of {}",
                issue.line,
                issue.file
            );
            if matches!(record, Record::Error(_)) {
                errors.push(issue);
            }
        }
        true
    });
    let (listed, _) = errors.into_parts();
    for issue in listed {
        for text in [&issue.column, &issue.id, &issue.reason] {
            assert!(
                text.chars().count() <= KEPT_CHARS,
                "a kept issue too long: {issue:?}"
            );
        }
    }
});
