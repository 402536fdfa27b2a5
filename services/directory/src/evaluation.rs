//! The matching evaluation: the names of `scripts/make_match_set.py` (real GLEIF names typed
//! as salespeople type them) matched against an index, tallied per variant: linked to the
//! right entity, left unlinked, linked to another. A test runs it on the bundled sample, the
//! `matching` benchmark on every GLEIF entity.

use std::path::Path;

use crate::index::SearchIndex;
use crate::matching::{Customer, match_customer};

/// One typed name and the entity it was made from.
#[derive(Debug, Clone)]
pub struct Typed {
    pub kind: String,
    pub name: String,
    pub country: String,
    pub lei: String,
    /// No other entity of the country has the same name once case, accents, punctuation,
    /// spacing and a trailing legal form are left out (as the script judges it).
    pub unambiguous: bool,
}

/// Reads a set written by the script.
pub fn read(path: &Path) -> anyhow::Result<Vec<Typed>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec?;
        out.push(Typed {
            kind: rec[0].to_owned(),
            name: rec[1].to_owned(),
            country: rec[2].to_owned(),
            lei: rec[3].to_owned(),
            unambiguous: &rec[4] == "true",
        });
    }
    Ok(out)
}

/// The tally of one variant (or of all).
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub names: usize,
    pub right: usize,
    pub unlinked: usize,
    pub wrong: usize,
    /// Of the unambiguous names: how many, and how many linked right.
    pub unambiguous: usize,
    pub unambiguous_right: usize,
}

impl Tally {
    /// Linked right, of the unambiguous names.
    pub fn unambiguous_linked(&self) -> f64 {
        self.unambiguous_right as f64 / self.unambiguous.max(1) as f64
    }

    fn add(&mut self, t: &Typed, linked: Option<&str>) {
        self.names += 1;
        self.unambiguous += t.unambiguous as usize;
        match linked {
            None => self.unlinked += 1,
            Some(id) if id == t.lei => {
                self.right += 1;
                self.unambiguous_right += t.unambiguous as usize;
            }
            Some(_) => self.wrong += 1,
        }
    }
}

/// The outcome of a set: per variant in the set's order, then all.
pub struct Evaluation {
    pub by_kind: Vec<(String, Tally)>,
    pub all: Tally,
    /// The names linked to another entity, and those unambiguous yet unlinked (for reading).
    pub wrong: Vec<String>,
    pub missed: Vec<String>,
}

/// Matches every name of `set` in `index`.
pub fn evaluate(index: &SearchIndex, set: &[Typed]) -> anyhow::Result<Evaluation> {
    let mut by_kind: Vec<(String, Tally)> = Vec::new();
    let mut all = Tally::default();
    let (mut wrong, mut missed) = (Vec::new(), Vec::new());
    for t in set {
        let found = match_customer(
            index,
            &Customer {
                name: t.name.clone(),
                country: t.country.clone(),
                city: String::new(),
            },
        )?;
        let linked = found.entity().map(|e| e.id.as_str());
        match linked {
            Some(id) if id != t.lei => wrong.push(format!("{} {:?} -> {id}", t.kind, t.name)),
            None if t.unambiguous => {
                missed.push(format!("{} {:?} ({})", t.kind, t.name, t.country))
            }
            _ => {}
        }
        all.add(t, linked);
        match by_kind.iter_mut().find(|(k, _)| *k == t.kind) {
            Some((_, tally)) => tally.add(t, linked),
            None => {
                let mut tally = Tally::default();
                tally.add(t, linked);
                by_kind.push((t.kind.clone(), tally));
            }
        }
    }
    Ok(Evaluation {
        by_kind,
        all,
        wrong,
        missed,
    })
}

impl Evaluation {
    /// The table a reader reads.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<12} {:>6} {:>6} {:>9} {:>6} {:>12}\n",
            "variant", "names", "right", "unlinked", "wrong", "unambiguous linked"
        );
        let all = ("all".to_owned(), self.all.clone());
        for (kind, t) in self.by_kind.iter().chain([&all]) {
            out.push_str(&format!(
                "{kind:<12} {:>6} {:>6} {:>9} {:>6} {:>7.3} of {}\n",
                t.names,
                t.right,
                t.unlinked,
                t.wrong,
                t.unambiguous_linked(),
                t.unambiguous
            ));
        }
        out
    }
}
