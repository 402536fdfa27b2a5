//! The solutions catalog: who manages what, and the picker's search.

use cosell_proto::deals as pb;
use cosell_testkit::authed;
use prost_types::FieldMask;

use crate::harness::*;

#[tokio::test]
async fn partners_publish_operators_mark_ready_and_the_picker_finds_word_starts() {
    let h = Harness::start().await;
    let ada = h.token(ADA).await;
    let own = h
        .create_solution(
            ADA,
            "Contoso Édge Security",
            pb::SolutionKind::PartnerSolution,
            "",
            "4000002",
            false,
        )
        .await;
    assert_eq!(own.publisher, h.contoso);
    assert!(!own.cosell_ready);

    // Only operators set the flags, create SKUs; a partner's MPN ID must be its own.
    let mark = |token: String, name: String| {
        let catalog = h.catalog();
        async move {
            catalog
                .clone()
                .update_solution(authed(
                    &token,
                    pb::UpdateSolutionRequest {
                        solution: Some(pb::Solution {
                            name,
                            cosell_ready: true,
                            ..Default::default()
                        }),
                        update_mask: Some(FieldMask {
                            paths: vec!["cosell_ready".into()],
                        }),
                    },
                ))
                .await
        }
    };
    let err = mark(ada.clone(), own.name.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let ready = mark(h.token(OLI).await, own.name.clone())
        .await
        .unwrap()
        .into_inner()
        .solution
        .unwrap();
    assert!(ready.cosell_ready);
    assert_ne!(ready.etag, own.etag);
    let err = mark(h.token(FAY).await, own.name.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    let err = h
        .catalog()
        .create_solution(authed(
            &ada,
            pb::CreateSolutionRequest {
                solution: Some(pb::Solution {
                    display_name: "Borrowed".into(),
                    kind: pb::SolutionKind::PartnerSolution as i32,
                    mpn_id: "5000001".into(),
                    ..Default::default()
                }),
                publisher: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // The picker: every typed word starts a word of the name, accents and case aside.
    let search = |query: &str, ready_only: bool| {
        let catalog = h.catalog();
        let ada = ada.clone();
        let query = query.to_owned();
        async move {
            catalog
                .clone()
                .list_solutions(authed(
                    &ada,
                    pb::ListSolutionsRequest {
                        query,
                        cosell_ready_only: ready_only,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .solutions
                .into_iter()
                .map(|s| s.display_name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("edge sec", false).await, ["Contoso Édge Security"]);
    assert_eq!(
        search("contoso", false).await,
        ["Contoso Cloud Analytics", "Contoso Édge Security"]
    );
    assert!(
        search("ecurity", false).await.is_empty(),
        "word starts only"
    );
    assert_eq!(
        search("", true).await,
        [
            "Contoso Cloud Analytics",
            "Contoso Édge Security",
            "Fabrikam Data Fabric"
        ]
    );
}
