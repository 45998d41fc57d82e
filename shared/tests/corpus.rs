//! Runs the decision corpus (`tests/corpus/*.json`) through the Rust core.

use std::path::PathBuf;

use authz_core::dataset::{CorpusCase, CorpusFile, ExpectedDecision};
use authz_core::decide;

fn corpus() -> Vec<CorpusCase> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut paths: Vec<_> = std::fs::read_dir(&folder)
        .expect("corpus folder")
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("corpus file");
            let file: CorpusFile = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            file.cases
        })
        .collect()
}

#[test]
fn every_corpus_case_gives_the_expected_decision() {
    let cases = corpus();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let question = case
            .question
            .question()
            .expect("corpus questions are valid");
        let facts = case.data.facts(&question, 7);
        let decision = decide(&question, &facts, case.now);
        assert_eq!(decision.revision, 7, "{}", case.name);
        if ExpectedDecision::of(&decision) != case.expected {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expected, decision
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let cases = corpus();
    let mut names: Vec<_> = cases.iter().map(|case| case.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
}
