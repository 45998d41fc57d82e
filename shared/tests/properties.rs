//! Property tests of the core: `decide` never panics, roles are monotonic, cache keys are
//! injective, entries round-trip, and no entry is servable past its expiry or below
//! `min_revision` — in particular never past the share a grant rests on.

use authz_core::cache::{CacheEntry, CacheKey, EntryError, TtlPolicy, replaces, servable};
use authz_core::facts::{Facts, Membership, ResourceFacts};
use authz_core::model::{AccessLevel, Operation, Role};
use authz_core::strategies::{self, NOW};
use authz_core::wire::{Source, WireDecision};
use authz_core::{Timestamp, decide};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        ..ProptestConfig::default()
    }
}

/// Raises every membership role and every link level in the facts by one step, where possible.
fn strengthen(facts: &Facts) -> Facts {
    let raise_role = |role: Role| match role {
        Role::Viewer => Role::Editor,
        Role::Editor => Role::Admin,
        Role::Admin | Role::Owner => Role::Owner,
    };
    let raise_level = |level: AccessLevel| match level {
        AccessLevel::Read => AccessLevel::Write,
        AccessLevel::Write | AccessLevel::Admin => AccessLevel::Admin,
    };
    let mut stronger = facts.clone();
    let project = match &mut stronger.resource {
        Some(ResourceFacts::Generation(generation)) => generation.project.as_mut(),
        Some(ResourceFacts::Project(project)) => Some(project),
        Some(ResourceFacts::Team(team)) => {
            team.membership = team.membership.map(|m| Membership {
                role: raise_role(m.role),
                ..m
            });
            None
        }
        None => None,
    };
    if let Some(project) = project {
        for team in &mut project.teams {
            team.access_level = raise_level(team.access_level);
            team.membership = team.membership.map(|m| Membership {
                role: raise_role(m.role),
                ..m
            });
        }
    }
    stronger
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decide_answers_consistently_on_any_dataset(
        data in strategies::dataset(),
        question in strategies::question(),
        offset_micros in -10_000_000i64..10_000_000,
    ) {
        let facts = data.facts(&question, 3);
        let now = Timestamp(NOW.0 + offset_micros);
        let decision = decide(&question, &facts, now);
        prop_assert_eq!(decision.revision, 3);
        prop_assert_eq!(decision.granted, decision.reason.is_none());
        prop_assert_eq!(decision.granted, decision.access_method.is_some());
        prop_assert_eq!(decision.granted, decision.effective_role.is_some());
        if let Some(valid_until) = decision.valid_until {
            prop_assert!(now < valid_until, "a grant resting on an expired share");
        }
        // A share-based grant is valid until its share's expiry, and no later.
        if decision.access_method == Some(authz_core::AccessMethod::ExplicitShare)
            && let Some(valid_until) = decision.valid_until
        {
            let after = decide(&question, &facts, valid_until);
            prop_assert!(after.access_method != Some(authz_core::AccessMethod::ExplicitShare)
                || after.valid_until != Some(valid_until));
        }
    }

    #[test]
    fn stronger_roles_never_lose_a_grant(
        data in strategies::dataset(),
        question in strategies::question(),
    ) {
        let facts = data.facts(&question, 1);
        let weaker = decide(&question, &facts, NOW);
        let stronger = decide(&question, &strengthen(&facts), NOW);
        if weaker.granted {
            prop_assert!(stronger.granted, "{weaker:?} then {stronger:?}");
        }
    }

    #[test]
    fn a_role_allows_whatever_a_weaker_role_allows(
        weaker in strategies::one_of(Role::ALL),
        stronger in strategies::one_of(Role::ALL),
        operation in strategies::one_of(Operation::ALL),
    ) {
        if weaker <= stronger && weaker.allows(operation) {
            prop_assert!(stronger.allows(operation));
        }
    }

    #[test]
    fn cache_keys_are_injective_and_short(
        first in strategies::question(),
        second in strategies::question(),
    ) {
        let (a, b) = (CacheKey::new(&first), CacheKey::new(&second));
        prop_assert_eq!(a == b, first == second);
        prop_assert!(a.as_str().len() < 100);
    }

    #[test]
    fn entries_round_trip_and_are_never_served_late_or_stale(
        data in strategies::dataset(),
        question in strategies::question(),
        revision in 0u64..1_000,
        grant_ttl_ms in 0u64..120_000,
        deny_ttl_ms in 0u64..120_000,
        probe_micros in -1_000_000i64..200_000_000,
        min_revision in proptest::option::of(0u64..1_000),
    ) {
        let facts = data.facts(&question, revision);
        let decision = decide(&question, &facts, NOW);
        let policy = TtlPolicy { grant_ttl_ms, deny_ttl_ms, not_found_ttl_ms: deny_ttl_ms };
        let entry = CacheEntry::new(decision, NOW, &policy, facts.dependencies(&question));
        prop_assert_eq!(CacheEntry::decode(&entry.encode()), Ok(entry.clone()));

        let probe = Timestamp(NOW.0 + probe_micros);
        let fresh = decide(&question, &facts, probe);
        if servable(&entry, probe, min_revision) {
            prop_assert!(probe < entry.expires_at);
            prop_assert!(min_revision.is_none_or(|min| revision >= min));
            // Whatever a cache serves equals what the same facts decide at that instant.
            prop_assert_eq!(entry.decision.granted, fresh.granted);
            prop_assert_eq!(entry.decision.reason, fresh.reason);
            prop_assert_eq!(entry.decision.access_method, fresh.access_method);
        }
        if let Some(valid_until) = entry.decision.valid_until {
            prop_assert!(entry.expires_at <= valid_until);
            prop_assert!(!servable(&entry, valid_until, None));
        }
        prop_assert!(!servable(&entry, entry.expires_at, None));
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic(text in ".{0,200}") {
        let _ = CacheEntry::decode(&text);
    }

    #[test]
    fn decoding_mutated_entries_never_panics(
        data in strategies::dataset(),
        question in strategies::question(),
        cut in 0usize..200,
        byte in any::<u8>(),
    ) {
        let facts = data.facts(&question, 9);
        let entry = CacheEntry::new(decide(&question, &facts, NOW), NOW, &TtlPolicy::default(), vec![]);
        let mut bytes = entry.encode().into_bytes();
        if let Some(slot) = bytes.get_mut(cut) {
            *slot = byte;
        }
        if let Ok(text) = String::from_utf8(bytes) {
            let _ = CacheEntry::decode(&text);
        }
    }
}

#[test]
fn old_formats_and_garbage_are_misses() {
    let entry = CacheEntry::decode("e1;1;direct_owner;owner;-;5;10;20;-;").expect("valid");
    assert!(entry.decision.granted);
    assert_eq!(
        CacheEntry::decode("e0;1;direct_owner;owner;-;5;10;20;-;"),
        Err(EntryError::UnknownFormat)
    );
    for other in [
        "",
        "{\"granted\":true}",
        "e2;1;direct_owner;owner;-;5;10;20;-;",
    ] {
        assert_eq!(
            CacheEntry::decode(other),
            Err(EntryError::UnknownFormat),
            "{other:?}"
        );
    }
    for garbage in [
        "e1",
        "e1;1;direct_owner;owner;-;5;10;20;-",
        "e1;1;direct_owner;owner;-;5;10;20;-;;",
        "e1;1;direct_owner;owner;no_relationship;5;10;20;-;",
        "e1;0;-;-;-;5;10;20;-;",
        "e1;0;-;-;no_relationship;5;10;20;30;",
        "e1;1;direct_owner;owner;-;5;20;10;-;",
        "e1;1;direct_owner;owner;-;-5;10;20;-;",
        "e1;1;sudo;owner;-;5;10;20;-;",
        "e1;1;direct_owner;owner;-;5;10;20;-;abc",
    ] {
        assert_eq!(
            CacheEntry::decode(garbage),
            Err(EntryError::Malformed),
            "{garbage:?}"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    /// Cached pieces rebuild the same facts: every decision from composed pieces equals the
    /// decision from the whole facts, and the facts' dependencies cover the pieces'.
    #[test]
    fn composed_pieces_decide_like_whole_facts(
        data in strategies::dataset(),
        question in strategies::question(),
        offset_micros in -5_000_000i64..5_000_000,
    ) {
        let now = Timestamp(NOW.0 + offset_micros);
        let facts = data.facts(&question, 4);
        let user = question.principal.user_id().and_then(|user| data.user_piece(user));
        let resource = data.resource_piece(question.resource);
        let composed = authz_core::pieces::compose(&question, 4, user.as_ref(), resource.as_ref());
        prop_assert_eq!(decide(&question, &composed, now), decide(&question, &facts, now));
        let dependencies = facts.dependencies(&question);
        for id in authz_core::pieces::resource_dependencies(&question.resource, resource.as_ref()) {
            prop_assert!(dependencies.contains(&id));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The way through the edge, with every delay injected: the question is sent at `sent`,
    /// reaches the origin, which decides (or answers from its own cache later), the answer
    /// travels back, is stored, and is later read from a tier, the read itself taking time.
    /// Whatever the edge serves is served strictly before the origin's own entry ends (its TTL
    /// and the share it rests on) and says what the facts decide at the instant it is sent back;
    /// the `ttl_ms` it hands on never reaches past that end either.
    #[test]
    fn the_edge_never_serves_past_what_the_origin_allowed(
        data in strategies::dataset(),
        question in strategies::question(),
        anchor in proptest::option::of(0usize..16),
        before_share_expiry_ms in 0u64..20_000,
        grant_ttl_ms in 1u64..60_000,
        deny_ttl_ms in 1u64..60_000,
        to_origin_ms in 0u64..3_000,
        origin_cache_ms in 0u64..30_000,
        back_ms in 0u64..3_000,
        read_after_ms in 0u64..70_000,
        read_takes_ms in 0u64..2_000,
    ) {
        // Near a share's expiry when the dataset has one, so that expiries fall in the window.
        let sent = anchor
            .and_then(|index| {
                let shares = &data.generation_shares;
                shares.get(index % shares.len().max(1))?.expires_at
            })
            .map_or(NOW, |expiry| Timestamp(expiry.0 - i64::try_from(before_share_expiry_ms * 1_000).unwrap()));
        let facts = data.facts(&question, 7);
        let policy = TtlPolicy { grant_ttl_ms, deny_ttl_ms, not_found_ttl_ms: deny_ttl_ms };
        let decided_at = sent.plus_millis(to_origin_ms);
        let origin = CacheEntry::new(decide(&question, &facts, decided_at), decided_at, &policy, vec![]);
        let answered_at = decided_at.plus_millis(origin_cache_ms);
        prop_assume!(servable(&origin, answered_at, None));
        let wire = WireDecision::from_entry(&origin, answered_at, Source::L1);
        let received = answered_at.plus_millis(back_ms);

        let edge = CacheEntry::decode(&wire.to_entry(sent).encode()).expect("round trip");
        prop_assert!(edge.expires_at <= origin.expires_at);
        let read_done = received.plus_millis(read_after_ms + read_takes_ms);
        if servable(&edge, read_done, None) {
            prop_assert!(read_done < origin.expires_at);
            let fresh = decide(&question, &facts, read_done);
            prop_assert_eq!(edge.decision.granted, fresh.granted);
            prop_assert_eq!(edge.decision.reason, fresh.reason);
            let handed = WireDecision::from_entry(&edge, read_done, Source::Edge);
            prop_assert!(read_done.plus_millis(handed.ttl_ms) <= origin.expires_at);
            if let Some(valid_until) = handed.valid_until {
                prop_assert!(read_done < valid_until);
            }
        }
    }

    /// A tier that writes only what [`replaces`] allows never goes back: an arrival never
    /// replaces an alive entry of a newer revision, whatever order the answers arrive in, and an
    /// arrival newer than what is held always replaces it. (What a tier no longer holds it does
    /// not remember: each entry's own lifetime, from its sending, bounds its staleness.)
    #[test]
    fn a_tier_never_puts_back_an_older_answer(
        arrivals in proptest::collection::vec((0u64..6, 1u64..10_000, 0u64..3_000), 1..40),
    ) {
        let mut held: Option<CacheEntry> = None;
        let mut now = NOW;
        for (revision, ttl_ms, gap_ms) in arrivals {
            now = now.plus_millis(gap_ms);
            let decision = authz_core::decide::Decision::deny(
                authz_core::DenyReason::NoRelationship, revision, None);
            let entry = CacheEntry::new(
                decision, now, &TtlPolicy { grant_ttl_ms: ttl_ms, deny_ttl_ms: ttl_ms, not_found_ttl_ms: ttl_ms }, vec![]);
            let before = held.clone().filter(|entry| now < entry.expires_at);
            if replaces(&entry, held.as_ref(), now) {
                held = Some(entry.clone());
            }
            let after = held.as_ref().filter(|entry| now < entry.expires_at).expect("alive");
            if let Some(before) = before {
                prop_assert!(after.decision.revision >= before.decision.revision);
                if revision > before.decision.revision {
                    prop_assert_eq!(after, &entry);
                }
            }
        }
    }
}
