//! The solutions catalog: solutions, and the picker's search through the word index
//! (`solution_words`), written with each solution in the same transaction.

use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use super::entities::{solution, solution_word};
use super::{Result, Store};
use crate::domain::Solution;

/// Beyond every character a word can hold (`domain::search_words` keeps letters and digits), so
/// `word < prefix || LAST` bounds the words that start with `prefix`.
const LAST: char = '\u{10FFFF}';

impl Store {
    pub async fn insert_solution(&self, s: &Solution) -> Result<()> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        let written = async {
            solution::Entity::insert(solution::to_active(s))
                .exec_without_returning(&txn)
                .await?;
            insert_words(&txn, s).await
        }
        .await;
        finish(txn, written).await
    }

    pub async fn get_solution(&self, id: Uuid) -> Result<Option<Solution>> {
        solution::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await?
            .map(solution::to_domain)
            .transpose()
    }

    pub async fn get_solutions(&self, ids: &[Uuid]) -> Result<Vec<Solution>> {
        solution::Entity::find()
            .filter(solution::Column::Id.is_in(ids.iter().map(Uuid::to_string)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(solution::to_domain)
            .collect()
    }

    /// Writes a solution if its stored version is still `expected`, and its words with it.
    pub async fn save_solution(&self, s: &Solution, expected: i64) -> Result<bool> {
        let txn = cosell_platform::db::begin(&self.db).await?;
        let written = async {
            let done = solution::Entity::update_many()
                .set(solution::to_active(s))
                .filter(solution::Column::Id.eq(s.id.to_string()))
                .filter(solution::Column::Version.eq(expected))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                return Ok(false);
            }
            solution_word::Entity::delete_many()
                .filter(solution_word::Column::SolutionId.eq(s.id.to_string()))
                .exec(&txn)
                .await?;
            insert_words(&txn, s).await?;
            Ok(true)
        }
        .await;
        finish(txn, written).await
    }

    /// The solutions `ids` and, in the same statement, the organization's co-sell-ready ones:
    /// whether it has one is rule D7's question, asked on every create.
    pub async fn solutions_for(
        &self,
        organization: Uuid,
        ids: &[Uuid],
    ) -> Result<(Vec<Solution>, bool)> {
        // On the read lane: one round trip, where the pool's release would add a second.
        let statement = solution::Entity::find()
            .filter(
                Condition::any()
                    .add(solution::Column::Id.is_in(ids.iter().map(Uuid::to_string)))
                    .add(
                        Condition::all()
                            .add(solution::Column::Publisher.eq(organization.to_string()))
                            .add(solution::Column::CosellReady.eq(true)),
                    ),
            )
            .build(self.db.get_database_backend());
        let rows: Vec<Solution> = self
            .lane
            .all(&statement)
            .await?
            .iter()
            .map(|row| solution::to_domain(solution::Model::from_query_result(row, "")?))
            .collect::<Result<_>>()?;
        let ready = rows
            .iter()
            .any(|s| s.publisher == Some(organization) && s.cosell_ready);
        Ok((rows, ready))
    }

    /// One page of solutions by name: every word of `words` starts a word of the name.
    /// `publisher`: `Some(None)` = the platform's.
    pub async fn list_solutions(
        &self,
        words: &[String],
        publisher: Option<Option<Uuid>>,
        kind: Option<&str>,
        cosell_ready_only: bool,
        after: Option<(String, String)>,
        limit: u64,
    ) -> Result<Vec<Solution>> {
        list_solutions_query(words, publisher, kind, cosell_ready_only, after, limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(solution::to_domain)
            .collect()
    }
}

/// The statement of [`Store::list_solutions`] (public for the test of its query plan): each
/// needed word is `id IN (the solutions having a word in [word, word || U+10FFFF))`, a range of
/// the index, instead of a `LIKE` over every name.
pub fn list_solutions_query(
    words: &[String],
    publisher: Option<Option<Uuid>>,
    kind: Option<&str>,
    cosell_ready_only: bool,
    after: Option<(String, String)>,
    limit: u64,
) -> sea_orm::Select<solution::Entity> {
    use solution::Column as C;
    let mut q = solution::Entity::find();
    for w in needed(words) {
        q = q.filter(C::Id.in_subquery(having_word_starting(w)));
    }
    match publisher {
        Some(Some(org)) => q = q.filter(C::Publisher.eq(org.to_string())),
        Some(None) => q = q.filter(C::Publisher.is_null()),
        None => {}
    }
    if let Some(k) = kind {
        q = q.filter(C::Kind.eq(k));
    }
    if cosell_ready_only {
        q = q.filter(C::CosellReady.eq(true));
    }
    if let Some((name, id)) = after {
        q = q.filter(
            Condition::any()
                .add(C::SortName.gt(name.clone()))
                .add(Condition::all().add(C::SortName.eq(name)).add(C::Id.gt(id))),
        );
    }
    q.order_by_asc(C::SortName).order_by_asc(C::Id).limit(limit)
}

/// The words a search must look up: each once, and none that starts another (a name word that
/// starts with `cloudera` starts with `cloud` too), longest first.
fn needed(words: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = words.iter().map(String::as_str).collect();
    sorted.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    let mut kept: Vec<&str> = Vec::with_capacity(sorted.len());
    for w in sorted {
        if !kept.iter().any(|k| k.starts_with(w)) {
            kept.push(w);
        }
    }
    kept
}

/// `SELECT solution_id FROM solution_words WHERE word >= prefix AND word < prefix || U+10FFFF`.
fn having_word_starting(prefix: &str) -> SelectStatement {
    use solution_word::Column as W;
    Query::select()
        .column(W::SolutionId)
        .from(solution_word::Entity)
        .and_where(Expr::col(W::Word).gte(prefix))
        .and_where(Expr::col(W::Word).lt(format!("{prefix}{LAST}")))
        .to_owned()
}

async fn insert_words(txn: &DatabaseTransaction, s: &Solution) -> Result<()> {
    let rows = solution_word::rows(s);
    if !rows.is_empty() {
        solution_word::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// Commits what `written` wrote, or rolls it back.
async fn finish<T>(txn: DatabaseTransaction, written: Result<T>) -> Result<T> {
    match written {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(e) => {
            txn.rollback().await?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sea_orm::{DbBackend, QueryTrait};

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn a_word_that_starts_another_is_not_looked_up() {
        assert_eq!(
            needed(&strings(&["cloud", "contoso", "cloudera", "con", "cloud"])),
            ["cloudera", "contoso"]
        );
        assert!(needed(&[]).is_empty());
    }

    #[test]
    fn each_word_is_a_range_of_the_index() {
        let sql = list_solutions_query(&strings(&["edge", "sec"]), None, None, false, None, 51)
            .build(DbBackend::Postgres)
            .to_string();
        assert_eq!(sql.matches("\"word\" >= ").count(), 2, "{sql}");
        assert!(!sql.contains("LIKE"), "{sql}");
    }

    proptest! {
        /// Dropping the words other words start with changes no answer: a name matches the
        /// needed words exactly when it matches them all.
        #[test]
        fn needed_words_match_what_all_words_match(
            query in proptest::collection::vec("[a-c]{1,3}", 0..6),
            name in proptest::collection::vec("[a-c]{1,4}", 0..6),
        ) {
            let matches = |words: &[&str]| {
                words.iter().all(|w| name.iter().any(|n| n.starts_with(w)))
            };
            let all: Vec<&str> = query.iter().map(String::as_str).collect();
            prop_assert_eq!(matches(&needed(&query)), matches(&all));
        }
    }
}
