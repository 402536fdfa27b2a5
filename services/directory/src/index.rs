//! The search index: tantivy over the normalized words of each entity's names, derived from the
//! database (rebuilt at start when missing or stale; updated by loads).
//!
//! Fields: `words` (normalized name words, BM25), `prefixes` (every prefix of every word, so
//! the word being typed matches by exact term), `exact` (the whole normalized name, for the
//! exact-match boost), `keys` (each name's [`NameKey`], whole and base alone, for confident
//! matching: see [`crate::matching`]), `country` / `region` / `city` (filters), `id`, and the
//! entity as stored JSON so that a search needs no database round trip.
//!
//! A search is built by `SearchIndex::build_query` (required words, then each optional score
//! part beside them); `one_typo` and its automaton `KeepFirstByte` find the words within one
//! edit of a typed one.

use std::path::Path;

use parking_lot::Mutex;
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AutomatonWeight, BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, FuzzyTermQuery,
    Occur, Query, TermQuery, Weight,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use crate::domain::Entity;
use crate::domain::name_key::NameKey;
use crate::domain::normalize::{
    could_be_legal_form, is_legal_form, name_words, prefixes, without_legal_suffix, words,
};

/// Longest prefix indexed; a longer word being typed is matched by a prefix automaton instead.
const PREFIX_MAX: usize = 16;
/// Typed words of at least this many letters forgive one typo: a word of 5 letters with one
/// letter missing has 4.
const FUZZY_MIN_LEN: usize = 4;
/// Memory the writer may use before it flushes a segment.
const WRITER_MEMORY: usize = 128 * 1024 * 1024;

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    words: Field,
    prefixes: Field,
    exact: Field,
    keys: Field,
    country: Field,
    region: Field,
    city: Field,
    entity: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |record| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("whitespace")
                .set_index_option(record),
        )
    };
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED),
        words: b.add_text_field("words", text(IndexRecordOption::WithFreqs)),
        prefixes: b.add_text_field("prefixes", text(IndexRecordOption::Basic)),
        exact: b.add_text_field("exact", STRING),
        keys: b.add_text_field("keys", STRING),
        country: b.add_text_field("country", STRING),
        region: b.add_text_field("region", STRING),
        city: b.add_text_field("city", STRING),
        entity: b.add_text_field("entity", STORED),
    };
    (b.build(), fields)
}

/// Small doc store blocks: a search reads ~10 stored entities at random, and each read
/// decompresses its whole block (tantivy's default is 16 KiB).
fn settings() -> IndexSettings {
    IndexSettings {
        docstore_blocksize: 4096,
        ..Default::default()
    }
}

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub limit: usize,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
}

/// Which part of a [`NameKey`] a `keys` term holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// Base and legal forms.
    Whole,
    /// The base alone.
    Base,
}

/// The `keys` term of one part of a key (the prefix keeps the two parts apart).
fn key_term(part: KeyPart, key: &NameKey) -> String {
    match part {
        KeyPart::Whole => format!("w:{}", key.full()),
        KeyPart::Base => format!("b:{}", key.base),
    }
}

/// The normalized city, as indexed and as filtered on.
pub fn city_key(city: &str) -> String {
    words(city).join(" ")
}

impl SearchIndex {
    /// Opens the index in `dir` (created when missing; recreated when its schema is not this
    /// version's), or in memory.
    pub fn open(dir: Option<&Path>) -> tantivy::Result<Self> {
        let (schema, fields) = schema();
        let index = match dir {
            None => Index::builder()
                .schema(schema.clone())
                .settings(settings())
                .create_in_ram()?,
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let existing = Index::open_in_dir(dir)
                    .ok()
                    .filter(|i| i.schema() == schema);
                match existing {
                    Some(index) => index,
                    None => {
                        // Missing or from another version: start empty; the caller rebuilds.
                        for entry in std::fs::read_dir(dir)? {
                            let path = entry?.path();
                            if path.is_file() {
                                std::fs::remove_file(path)?;
                            }
                        }
                        Index::create(MmapDirectory::open(dir)?, schema.clone(), settings())?
                    }
                }
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer(WRITER_MEMORY)?;
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
        })
    }

    /// The database generation the index was last committed at; `None` for a new index.
    pub fn generation(&self) -> Option<i64> {
        self.index
            .load_metas()
            .ok()?
            .payload
            .and_then(|p| p.parse().ok())
    }

    /// Segments searched per query (fewer is faster; merges reduce them in the background).
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Adds or replaces entities (by id); visible after [`SearchIndex::commit`].
    pub fn upsert(&self, entities: &[Entity]) -> tantivy::Result<()> {
        let f = self.fields;
        let writer = self.writer.lock();
        for e in entities {
            writer.delete_term(Term::from_field_text(f.id, &e.id));
            let mut doc = TantivyDocument::default();
            doc.add_text(f.id, &e.id);
            // Every word is indexed, legal forms too: a query may leave them out (they are
            // optional there) or type them, even with a typo.
            // Each name normalized once: it is most of the cost of indexing a name.
            let names: Vec<Vec<String>> = std::iter::once(&e.legal_name)
                .chain(&e.other_names)
                .map(|n| words(n))
                .collect();
            let exact = without_legal_suffix(&names[0]).join(" ");
            for name in &names {
                let key = NameKey::of_words(name, &e.country);
                doc.add_text(f.keys, key_term(KeyPart::Whole, &key));
                doc.add_text(f.keys, key_term(KeyPart::Base, &key));
            }
            let all_words = names.concat();
            doc.add_text(f.words, all_words.join(" "));
            let mut prefix_text = String::new();
            for w in &all_words {
                for p in prefixes(w, PREFIX_MAX) {
                    prefix_text.push_str(p);
                    prefix_text.push(' ');
                }
            }
            doc.add_text(f.prefixes, prefix_text);
            doc.add_text(f.exact, exact);
            doc.add_text(f.country, &e.country);
            doc.add_text(f.region, e.region.to_lowercase());
            doc.add_text(f.city, city_key(&e.city));
            doc.add_text(f.entity, serde_json::to_string(e).unwrap_or_default());
            writer.add_document(doc)?;
        }
        Ok(())
    }

    /// Removes every document; visible after [`SearchIndex::commit`].
    pub fn clear(&self) -> tantivy::Result<()> {
        self.writer.lock().delete_all_documents()?;
        Ok(())
    }

    /// Drops the changes made since the last commit.
    pub fn rollback(&self) -> tantivy::Result<()> {
        self.writer.lock().rollback()?;
        Ok(())
    }

    /// Makes the changes durable and searchable, recording the database generation they match.
    pub fn commit(&self, generation: i64) -> tantivy::Result<()> {
        {
            let mut writer = self.writer.lock();
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&generation.to_string());
            prepared.commit()?;
        }
        self.reader.reload()
    }

    /// Merges every segment into one and makes the result searchable: a query pays per segment
    /// for each of its term lookups, so a freshly loaded index (several segments) answers
    /// markedly slower than a compacted one. Blocks until the merge is done; the index stays
    /// searchable meanwhile.
    pub fn compact(&self) -> tantivy::Result<()> {
        // The writer's own merge policy may be merging some of the same segments; such a race
        // fails the merge harmlessly, and the next try sees the segments as they are then.
        let mut tries = 0;
        loop {
            let ids = self.index.searchable_segment_ids()?;
            if ids.len() < 2 {
                return Ok(());
            }
            let merging = self.writer.lock().merge(&ids);
            match merging.wait() {
                Ok(_) => return self.reader.reload(),
                Err(e) if tries >= 20 => return Err(e),
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(500));
                }
            }
        }
    }

    /// Every entity of `country` with a name whose key `part` is `key`'s, up to `limit`.
    pub fn with_key(
        &self,
        part: KeyPart,
        key: &NameKey,
        country: &str,
        limit: usize,
    ) -> tantivy::Result<Vec<Entity>> {
        let f = self.fields;
        let query = BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.keys, &key_term(part, key)),
                    IndexRecordOption::Basic,
                )) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.country, country),
                    IndexRecordOption::Basic,
                )),
            ),
        ]);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (_, addr) in top {
            out.extend(self.entity(&searcher, addr)?);
        }
        Ok(out)
    }

    /// The entity stored with a document.
    fn entity(
        &self,
        searcher: &Searcher,
        addr: tantivy::DocAddress,
    ) -> tantivy::Result<Option<Entity>> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        Ok(doc
            .get_first(self.fields.entity)
            .and_then(|v| v.as_str())
            .and_then(|json| serde_json::from_str::<Entity>(json).ok()))
    }

    /// Searches; `Err` only for index failures. An empty result when nothing matches.
    ///
    /// Typos are first looked for only in words that no entity has (cheap, and right for most
    /// typos); when that finds nothing, a second pass allows a typo in every long enough word
    /// (`Wold Wide` is a typo of `World Wide` although some name has `Wold`).
    pub fn search(&self, q: &SearchQuery) -> tantivy::Result<Vec<(Entity, f32)>> {
        let limit = q.limit.max(1);
        let searcher = self.reader.searcher();
        let mut top = match self.build_query(q, false) {
            Some(query) => searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?,
            None => return Ok(Vec::new()),
        };
        if top.is_empty()
            && let Some(query) = self.build_query(q, true)
        {
            top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        }
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            out.extend(self.entity(&searcher, addr)?.map(|e| (e, score)));
        }
        Ok(out)
    }

    /// The query for `q`; `every_typo`: allow a typo in every long enough word, not only in
    /// words no entity has.
    fn build_query(&self, q: &SearchQuery, every_typo: bool) -> Option<Box<dyn Query>> {
        let f = self.fields;
        let typing = !q.text.ends_with(char::is_whitespace);
        let typed = words(&q.text);
        if typed.is_empty() {
            return None;
        }
        let searcher = self.reader.searcher();
        let known = |field, w: &str| {
            !every_typo
                && searcher
                    .doc_freq(&Term::from_field_text(field, w))
                    .unwrap_or(0)
                    > 0
        };
        let term = |field, text: &str| Term::from_field_text(field, text);
        let boost =
            |q: Box<dyn Query>, b: f32| -> Box<dyn Query> { Box::new(BoostQuery::new(q, b)) };
        let constant =
            |q: Box<dyn Query>, s: f32| -> Box<dyn Query> { Box::new(ConstScoreQuery::new(q, s)) };
        // Legal forms are optional: `Contoso`, `Contoso Ltd` and `Contoso Limited` all find
        // `CONTOSO LIMITED`. A word being typed that could still become one (`Gm`, `Lim`) is too.
        // If nothing else is left, they are required after all.
        let last = typed.len() - 1;
        let optional =
            |i: usize, w: &str| is_legal_form(w) || (i == last && typing && could_be_legal_form(w));
        let all_optional = typed.iter().enumerate().all(|(i, w)| optional(i, w));
        // Each word's clause is split into what a document must match (the widest of its
        // matches) and the score of its narrower matches, added on as optional clauses one at a
        // time (below), never as a union: tantivy's union scorer walks every document of its
        // parts in the range it is asked to skip, and a part such as the prefix `co` or the word
        // `limited` holds a quarter of all entities, where the required words hold a few.
        let mut required: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut scores: Vec<Box<dyn Query>> = Vec::new();
        for (i, w) in typed.iter().enumerate() {
            let len = w.chars().count();
            // A full-word match counts by BM25 (rare words weigh more); prefix and typo matches
            // get a fixed score below it, as a prefix's rarity says little about relevance.
            let word = boost(
                Box::new(TermQuery::new(
                    term(f.words, w),
                    IndexRecordOption::WithFreqs,
                )),
                2.0,
            );
            // One typo in what is typed so far, where it is long enough to tell. Up to
            // PREFIX_MAX letters the word being typed looks among the indexed prefixes (the few
            // within one edit of what is typed), not among every word starting near it: a
            // prefix automaton over the words walks thousands of terms for a short prefix.
            // Each match set holds the next one: typos the prefixes, prefixes the word.
            let (widest, narrower): (Box<dyn Query>, Vec<Box<dyn Query>>) = if i == last && typing {
                let prefix: Box<dyn Query> = if len <= PREFIX_MAX {
                    Box::new(TermQuery::new(
                        term(f.prefixes, w),
                        IndexRecordOption::Basic,
                    ))
                } else {
                    Box::new(FuzzyTermQuery::new_prefix(term(f.words, w), 0, true))
                };
                // A word longer than the indexed prefixes is taken as known when its first
                // PREFIX_MAX letters are: should a typo after them leave the search empty, the
                // second pass allows it.
                let indexed = prefixes(w, PREFIX_MAX).last().unwrap_or(w);
                if len >= FUZZY_MIN_LEN && !known(f.prefixes, indexed) {
                    let typo: Box<dyn Query> = if len <= PREFIX_MAX {
                        one_typo(&searcher, f.prefixes, w)
                    } else {
                        Box::new(FuzzyTermQuery::new_prefix(term(f.words, w), 1, true))
                    };
                    (constant(typo, 0.8), vec![constant(prefix, 1.0), word])
                } else {
                    (constant(prefix, 1.0), vec![word])
                }
            } else if len >= FUZZY_MIN_LEN && !known(f.words, w) {
                // A word no entity has is most likely a typo of one that some entity has.
                (constant(one_typo(&searcher, f.words, w), 0.8), vec![word])
            } else {
                (word, Vec::new())
            };
            if optional(i, w) && !all_optional {
                scores.push(widest);
            } else {
                required.push((Occur::Must, widest));
            }
            scores.extend(narrower);
        }
        let matched = name_words(&q.text);
        // The whole name typed exactly ranks first.
        scores.push(boost(
            Box::new(TermQuery::new(
                term(f.exact, &matched.join(" ")),
                IndexRecordOption::Basic,
            )),
            4.0,
        ));
        if let Some(c) = &q.country {
            required.push((
                Occur::Must,
                Box::new(TermQuery::new(term(f.country, c), IndexRecordOption::Basic)),
            ));
        }
        if let Some(r) = &q.region {
            required.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    term(f.region, &r.to_lowercase()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(c) = &q.city {
            required.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    term(f.city, &city_key(c)),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        // Each optional clause beside the required part alone: tantivy then seeks it along the
        // required matches (skip lists), where several optional clauses would form a union.
        let mut query: Box<dyn Query> = Box::new(BooleanQuery::new(required));
        for score in scores {
            query = Box::new(BooleanQuery::new(vec![
                (Occur::Must, query),
                (Occur::Should, score),
            ]));
        }
        Some(query)
    }
}

/// The terms of `field` within one edit (a letter changed, added, dropped, or two neighbours
/// swapped) of `w`, as one query.
///
/// tantivy's fuzzy query walks the term dictionary with a Levenshtein automaton, decoding
/// every child of every node the one edit still allows; an edit of the first letter allows
/// every first letter, and each of those nodes has dozens of children. At 400,000 entities
/// that walk took 160-580 us for any word, even one matching a single entity. So the walk
/// here keeps the first letter (the edits after it), and the edits of the first letter are
/// looked up one candidate at a time (about 70 exact lookups, each a single path through the
/// dictionary): 55-190 us for the same words, and the typo queries of the quality bench
/// 25-40% faster (mean and median) with the same recall. The candidates are the letters and
/// digits normalized ASCII words are made of; a word in another script keeps tantivy's walk.
fn one_typo(searcher: &Searcher, field: Field, w: &str) -> Box<dyn Query> {
    let term = Term::from_field_text(field, w);
    let bytes = w.as_bytes();
    if !w.is_ascii() || bytes.len() < 2 {
        return Box::new(FuzzyTermQuery::new(term, 1, true));
    }
    let first = bytes[0];
    let rest = &w[1..];
    let mut candidates = vec![
        rest.to_owned(),
        format!("{}{}{}", &w[1..2], &w[..1], &w[2..]),
    ];
    for c in TYPO_ALPHABET.chars() {
        candidates.push(format!("{c}{rest}"));
        candidates.push(format!("{c}{w}"));
    }
    // Each segment's dictionary fetched once: through `Searcher::doc_freq`, which fetches it
    // for every term, the lookups took twice as long.
    let dictionaries: Vec<_> = searcher
        .segment_readers()
        .iter()
        .filter_map(|s| s.inverted_index(field).ok())
        .collect();
    let mut options: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Should, Box::new(FirstLetterKept(term)))];
    for candidate in candidates {
        // Those starting with `w`'s own first letter are the walk's.
        if candidate.as_bytes()[0] == first {
            continue;
        }
        let indexed = dictionaries
            .iter()
            .any(|d| matches!(d.terms().term_ord(candidate.as_bytes()), Ok(Some(_))));
        if indexed {
            options.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, &candidate),
                    IndexRecordOption::Basic,
                )),
            ));
        }
    }
    Box::new(BooleanQuery::new(options))
}

/// What normalized ASCII words are made of ([`words`] lower-cases and keeps letters and
/// digits).
const TYPO_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyz0123456789";

/// The terms within one edit of the term's text that start with its first byte.
#[derive(Clone, Debug)]
struct FirstLetterKept(Term);

impl Query for FirstLetterKept {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let within_one = FuzzyTermQuery::new(self.0.clone(), 1, true).automaton()?;
        let first = self.0.serialized_value_bytes().first().copied();
        Ok(Box::new(AutomatonWeight::new(
            self.0.field(),
            KeepFirstByte {
                inner: within_one,
                first,
            },
        )))
    }
}

/// `inner`, restricted to keys whose first byte is `first`.
struct KeepFirstByte<A> {
    inner: A,
    first: Option<u8>,
}

impl<A: tantivy_fst::Automaton> tantivy_fst::Automaton for KeepFirstByte<A> {
    /// Whether the first byte is still to come, and `inner`'s state (`None`: no match below).
    type State = (bool, Option<A::State>);

    fn start(&self) -> Self::State {
        (true, Some(self.inner.start()))
    }

    fn is_match(&self, (_, state): &Self::State) -> bool {
        state.as_ref().is_some_and(|s| self.inner.is_match(s))
    }

    fn can_match(&self, (_, state): &Self::State) -> bool {
        state.as_ref().is_some_and(|s| self.inner.can_match(s))
    }

    fn accept(&self, (at_start, state): &Self::State, byte: u8) -> Self::State {
        if *at_start && Some(byte) != self.first {
            return (false, None);
        }
        (false, state.as_ref().map(|s| self.inner.accept(s, byte)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::collector::DocSetCollector;

    fn entity(i: usize, name: &str) -> Entity {
        Entity {
            id: format!("E{i}"),
            legal_name: name.to_owned(),
            other_names: Vec::new(),
            address_lines: Vec::new(),
            city: String::new(),
            region: String::new(),
            postal_code: String::new(),
            country: "DE".into(),
            address_generated: false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Over words of three letters, most words are within one edit of many others, first
        /// letters included.
        #[test]
        fn one_typo_finds_what_the_whole_walk_finds(
            names in prop::collection::vec("[abc]{1,6}( [abc0]{1,6}){0,2}", 1..30),
            query in "[abc0d]{2,7}",
        ) {
            let index = SearchIndex::open(None).unwrap();
            let entities: Vec<Entity> =
                names.iter().enumerate().map(|(i, n)| entity(i, n)).collect();
            index.upsert(&entities).unwrap();
            index.commit(1).unwrap();
            let searcher = index.reader.searcher();
            for field in [index.fields.words, index.fields.prefixes] {
                let ours = searcher.search(&one_typo(&searcher, field, &query), &DocSetCollector).unwrap();
                let walk = FuzzyTermQuery::new(Term::from_field_text(field, &query), 1, true);
                let theirs = searcher.search(&walk, &DocSetCollector).unwrap();
                prop_assert_eq!(ours, theirs);
            }
        }
    }

    #[test]
    fn one_typo_of_the_first_letter_is_found() {
        let index = SearchIndex::open(None).unwrap();
        index
            .upsert(&[
                entity(0, "Umicore"),
                entity(1, "Siemens"),
                entity(2, "Bosch"),
            ])
            .unwrap();
        index.commit(1).unwrap();
        let searcher = index.reader.searcher();
        let found = |w: &str| {
            let docs = searcher
                .search(
                    &one_typo(&searcher, index.fields.words, w),
                    &DocSetCollector,
                )
                .unwrap();
            docs.len()
        };
        // Changed, added, dropped and swapped first letters, and a typo after it.
        for typo in [
            "amicore", "xumicore", "micore", "muicore", "umicoer", "siemsns",
        ] {
            assert_eq!(found(typo), 1, "{typo}");
        }
        assert_eq!(found("xmicorx"), 0);
    }
}
