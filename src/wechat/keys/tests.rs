//! Unit tests of `keys`: every binding rule, their order, ambiguity, expiry, storage.
use super::*;
use crate::wechat::protocol::Member;

const NOW: i64 = 1_765_000_000;

fn person(id: &str, nick: &str, remark: &str) -> Contact {
    Contact {
        user_name: id.into(),
        nick_name: nick.into(),
        remark_name: remark.into(),
        sex: 2,
        province: "Zhejiang".into(),
        city: "Hangzhou".into(),
        ..Contact::default()
    }
}

fn group(id: &str, name: &str, members: &[&str]) -> Contact {
    Contact {
        user_name: id.into(),
        nick_name: name.into(),
        member_count: members.len() as u64,
        member_list: members
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                user_name: format!("@m{i}{id}"),
                nick_name: (*n).into(),
                display_name: String::new(),
            })
            .collect(),
        ..Contact::default()
    }
}

/// Binds one login's contacts and answers each one's key, in order.
fn login(keys: &mut ContactKeys, contacts: &[Contact], now: i64) -> (Vec<Option<String>>, Outcome) {
    let outcome = keys.bind_login(contacts, now);
    let bound = contacts
        .iter()
        .map(|c| keys.key_of(&c.user_name).map(str::to_owned))
        .collect();
    (bound, outcome)
}

/// Gives every contact a new UserName, as each login does.
fn relogin(contacts: &[Contact]) -> Vec<Contact> {
    contacts
        .iter()
        .map(|c| Contact {
            user_name: format!("{}x", c.user_name),
            ..c.clone()
        })
        .collect()
}

fn key(k: &Option<String>) -> &str {
    k.as_deref().expect("a key")
}

#[test]
fn new_contacts_get_distinct_well_formed_keys() {
    let mut keys = ContactKeys::new();
    let contacts = [
        person("@a", "Alice", ""),
        person("@b", "Bob", ""),
        group("@@f", "Family", &["Alice", "Bob"]),
    ];
    let (bound, outcome) = login(&mut keys, &contacts, NOW);
    assert!(outcome.changed && outcome.ambiguous.is_empty());
    let all: BTreeSet<&str> = bound.iter().map(key).collect();
    assert_eq!(all.len(), 3);
    assert!(
        all.iter().all(|k| crate::event::is_contact_key(k)),
        "{all:?}"
    );
    assert_eq!(keys.len(), 3);
}

#[test]
fn keys_survive_logins_that_hand_out_new_user_names() {
    let mut keys = ContactKeys::new();
    let mut contacts = vec![
        person("@a", "Alice", "Mom"),
        person("@b", "Bob", ""),
        group("@@f", "Family", &["Alice", "Bob", "Me"]),
    ];
    let (first, _) = login(&mut keys, &contacts, NOW);
    for day in 1..=3 {
        contacts = relogin(&contacts);
        let (again, outcome) = login(&mut keys, &contacts, NOW + day * DAY);
        assert_eq!(again, first, "login {day}");
        assert!(outcome.ambiguous.is_empty());
    }
}

#[test]
fn a_renamed_contact_keeps_its_key_through_its_remark() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(&mut keys, &[person("@a", "Alice", "Mom")], NOW);
    let renamed = person("@a2", "Alice 🌸", "Mom");
    let (again, _) = login(&mut keys, &[renamed], NOW + DAY);
    assert_eq!(again, first);
    assert_eq!(keys.record(key(&first[0])).unwrap().nick, "Alice 🌸");
}

#[test]
fn a_contact_whose_remark_changed_keeps_its_key_through_its_profile() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(&mut keys, &[person("@a", "Alice", "Mom")], NOW);
    let (again, _) = login(&mut keys, &[person("@a2", "Alice", "Mother")], NOW + DAY);
    assert_eq!(again, first);
    assert_eq!(keys.record(key(&first[0])).unwrap().remark, "Mother");
}

#[test]
fn the_profile_rule_needs_the_same_sex_province_and_city() {
    let changes: [fn(&mut Contact); 4] = [
        |c| c.sex = 1,
        |c| c.province = "Jiangsu".into(),
        |c| c.city = "Ningbo".into(),
        |c| c.nick_name = "Alicia".into(),
    ];
    for (i, change) in changes.into_iter().enumerate() {
        let mut keys = ContactKeys::new();
        let (first, _) = login(&mut keys, &[person("@a", "Alice", "")], NOW);
        let mut moved = person("@a2", "Alice", "");
        change(&mut moved);
        let (again, outcome) = login(&mut keys, &[moved], NOW + DAY);
        assert_ne!(again, first, "change {i}: a new key");
        assert!(again[0].is_some() && outcome.ambiguous.is_empty());
    }
}

#[test]
fn the_remark_rule_comes_before_the_profile_rule() {
    // Both look the same by profile; only the remark sets Alice apart. Were the profile rule
    // tried first (or beside it), Bob would match both keys and get none.
    let mut keys = ContactKeys::new();
    let contacts = [person("@a", "Alice", "Mom"), person("@b", "Alice", "")];
    let (first, outcome) = login(&mut keys, &contacts, NOW);
    assert!(outcome.ambiguous.is_empty(), "{:?}", outcome.ambiguous);
    let (again, outcome) = login(&mut keys, &relogin(&contacts), NOW + DAY);
    assert_eq!(again, first);
    assert!(outcome.ambiguous.is_empty(), "{:?}", outcome.ambiguous);
}

#[test]
fn a_person_never_takes_a_groups_key_nor_a_group_a_persons() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(
        &mut keys,
        &[person("@a", "Family", "Home"), group("@@f", "Family", &[])],
        NOW,
    );
    // Next login the person is gone and a group has its remark: a group of that name is not
    // the person.
    let mut g = group("@@g", "Other", &[]);
    g.remark_name = "Home".into();
    let (again, _) = login(&mut keys, &[g, group("@@f2", "Family", &[])], NOW + DAY);
    assert_ne!(again[0], first[0]);
    assert_eq!(again[1], first[1]);
}

#[test]
fn a_group_keeps_its_key_when_some_members_change() {
    let mut keys = ContactKeys::new();
    let before = group("@@f", "Family", &["Ann", "Bob", "Cy", "Dee", "Me", "Zed"]);
    let (first, _) = login(&mut keys, &[before], NOW);
    // 4 of 8 names shared: J = 0.5, the threshold.
    let after = group("@@f2", "Family", &["Ann", "Bob", "Cy", "Me", "Kim", "Lu"]);
    let (again, _) = login(&mut keys, std::slice::from_ref(&after), NOW + DAY);
    assert_eq!(again, first);
    assert_eq!(keys.record(key(&first[0])).unwrap().members, 6);
}

#[test]
fn a_same_named_group_with_other_members_gets_a_new_key() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(
        &mut keys,
        &[group("@@f", "Family", &["Ann", "Bob", "Cy", "Me"])],
        NOW,
    );
    // 2 of 6 shared: J = 1/3.
    let other = group("@@g", "Family", &["Me", "Ann", "Uli", "Vic"]);
    let (again, outcome) = login(&mut keys, &[other], NOW + DAY);
    assert!(again[0].is_some());
    assert_ne!(again, first);
    assert!(outcome.ambiguous.is_empty());
}

#[test]
fn two_same_named_groups_are_told_apart_by_their_members() {
    let mut keys = ContactKeys::new();
    let contacts = [
        group("@@f", "Family", &["Me", "Mum", "Dad", "Sis"]),
        group("@@g", "Family", &["Me", "Wife", "Inlaw1", "Inlaw2"]),
    ];
    let (first, outcome) = login(&mut keys, &contacts, NOW);
    assert!(outcome.ambiguous.is_empty());
    let mut again = relogin(&contacts);
    again.reverse();
    let (bound, outcome) = login(&mut keys, &again, NOW + DAY);
    assert_eq!(bound, vec![first[1].clone(), first[0].clone()]);
    assert!(outcome.ambiguous.is_empty());
}

#[test]
fn a_group_without_known_members_is_matched_by_its_member_count() {
    let mut keys = ContactKeys::new();
    let contacts = [
        group("@@f", "Club", &["A", "B", "C"]),
        group("@@g", "Club", &["D", "E", "F", "G"]),
    ];
    let (first, _) = login(&mut keys, &contacts, NOW);
    let counted = |id: &str, n: u64| Contact {
        user_name: id.into(),
        nick_name: "Club".into(),
        member_count: n,
        ..Contact::default()
    };
    let (again, outcome) = login(
        &mut keys,
        &[counted("@@x", 4), counted("@@y", 3)],
        NOW + DAY,
    );
    assert_eq!(again, vec![first[1].clone(), first[0].clone()]);
    assert!(outcome.ambiguous.is_empty());
}

#[test]
fn a_contact_that_matches_two_keys_gets_none_and_is_reported() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(
        &mut keys,
        &[person("@a", "Alice", "Mom"), person("@b", "Alice", "Ma")],
        NOW,
    );
    let (again, outcome) = login(&mut keys, &[person("@x", "Alice", "")], NOW + DAY);
    assert_eq!(again, vec![None]);
    let mut candidates: Vec<String> = first.iter().map(|k| key(k).to_owned()).collect();
    candidates.sort();
    assert_eq!(
        outcome.ambiguous,
        vec![Ambiguous {
            id: "@x".into(),
            name: "Alice".into(),
            candidates
        }]
    );
}

#[test]
fn a_key_that_two_contacts_match_goes_to_neither() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(
        &mut keys,
        &[person("@a", "Alice", ""), person("@b", "Bob", "")],
        NOW,
    );
    // Bob now looks exactly like Alice did.
    let contacts = [person("@a2", "Alice", ""), person("@b2", "Alice", "")];
    let (again, outcome) = login(&mut keys, &contacts, NOW + DAY);
    assert_eq!(again, vec![None, None]);
    let reported: Vec<(&str, &[String])> = outcome
        .ambiguous
        .iter()
        .map(|a| (a.id.as_str(), a.candidates.as_slice()))
        .collect();
    let alice = [key(&first[0]).to_owned()];
    assert_eq!(reported, vec![("@a2", &alice[..]), ("@b2", &alice[..])]);
    assert_eq!(
        keys.find(key(&first[0])),
        KeyLookup::Disputed(vec!["@a2", "@b2"])
    );
    assert_eq!(keys.find(key(&first[1])), KeyLookup::Absent);
    // Told apart again, each has its own key back.
    let (back, outcome) = login(
        &mut keys,
        &[person("@a3", "Alice", ""), person("@b3", "Bob", "")],
        NOW + 2 * DAY,
    );
    assert_eq!(back, first);
    assert!(outcome.ambiguous.is_empty());
}

#[test]
fn new_look_alike_contacts_get_no_key_until_something_sets_them_apart() {
    let mut keys = ContactKeys::new();
    let twins = [person("@a", "Zhang Wei", ""), person("@b", "Zhang Wei", "")];
    let (bound, outcome) = login(&mut keys, &twins, NOW);
    assert_eq!(bound, vec![None, None]);
    assert_eq!(outcome.ambiguous.len(), 2);
    assert!(outcome.ambiguous.iter().all(|a| a.candidates.is_empty()));
    assert!(
        keys.is_empty(),
        "no key that the next login could not place"
    );
    // A remark on one sets them apart: both get keys, and keep them.
    let apart = [
        person("@a2", "Zhang Wei", "Uncle"),
        person("@b2", "Zhang Wei", ""),
    ];
    let (first, outcome) = login(&mut keys, &apart, NOW + DAY);
    assert!(outcome.ambiguous.is_empty());
    assert!(first.iter().all(Option::is_some));
    let (again, _) = login(&mut keys, &relogin(&apart), NOW + 2 * DAY);
    assert_eq!(again, first);
}

#[test]
fn keys_not_seen_for_ninety_days_are_dropped() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(
        &mut keys,
        &[person("@a", "Alice", ""), person("@b", "Bob", "")],
        NOW,
    );
    // Bob is away for a while; Alice is seen on day 50.
    login(&mut keys, &[person("@a2", "Alice", "")], NOW + 50 * DAY);
    login(&mut keys, &[person("@a3", "Alice", "")], NOW + 90 * DAY);
    assert_eq!(keys.len(), 2, "day 90: still kept");
    let (_, outcome) = login(&mut keys, &[person("@a4", "Alice", "")], NOW + 90 * DAY + 1);
    assert!(outcome.changed);
    assert_eq!(keys.find(key(&first[1])), KeyLookup::Unknown);
    assert_eq!(keys.len(), 1);
    let (back, _) = login(&mut keys, &[person("@b9", "Bob", "")], NOW + 91 * DAY);
    assert_ne!(back[0], first[1], "Bob comes back with a new key");
}

#[test]
fn a_disputed_key_counts_as_seen() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(&mut keys, &[person("@a", "Alice", "")], NOW);
    let twins = [person("@a2", "Alice", ""), person("@b2", "Alice", "")];
    login(&mut keys, &twins, NOW + 80 * DAY);
    login(&mut keys, &relogin(&twins), NOW + 160 * DAY);
    assert_eq!(
        keys.find(key(&first[0])),
        KeyLookup::Disputed(vec!["@a2x", "@b2x"])
    );
}

#[test]
fn a_contact_renamed_within_a_login_keeps_its_key_and_the_next_login_finds_the_new_name() {
    let mut keys = ContactKeys::new();
    let (first, _) = login(&mut keys, &[person("@a", "Alice", "")], NOW);
    let renamed = person("@a", "Alice W.", "");
    let outcome = keys.update([&renamed], &[], NOW + 60);
    assert!(outcome.changed);
    assert_eq!(keys.key_of("@a"), first[0].as_deref());
    let (again, _) = login(&mut keys, &[person("@a2", "Alice W.", "")], NOW + DAY);
    assert_eq!(again, first);
}

#[test]
fn a_contact_that_appears_within_a_login_is_bound_to_its_stored_key() {
    let mut keys = ContactKeys::new();
    let family = group("@@f", "Family", &["Me", "Mum", "Dad"]);
    let (first, _) = login(&mut keys, &[person("@a", "Alice", ""), family.clone()], NOW);
    // Next login the group is not in the contact list; a message brings it in.
    login(&mut keys, &[person("@a2", "Alice", "")], NOW + DAY);
    let back = Contact {
        user_name: "@@f2".into(),
        ..family
    };
    let outcome = keys.update([&back], &[], NOW + DAY + 60);
    assert!(outcome.ambiguous.is_empty());
    assert_eq!(keys.key_of("@@f2"), first[1].as_deref());
}

#[test]
fn a_contact_without_a_key_stays_without_one_for_the_login() {
    let mut keys = ContactKeys::new();
    let twins = [person("@a", "Kim", ""), person("@b", "Kim", "")];
    login(&mut keys, &twins, NOW);
    let remarked = person("@a", "Kim", "Cousin");
    let outcome = keys.update([&remarked], &[], NOW + 60);
    assert_eq!(keys.key_of("@a"), None, "not guessed within the login");
    assert_eq!(outcome, Outcome::default());
}

#[test]
fn a_removed_contact_frees_its_key_for_its_return() {
    let mut keys = ContactKeys::new();
    let alice = person("@a", "Alice", "");
    let (first, _) = login(&mut keys, std::slice::from_ref(&alice), NOW);
    keys.update(Vec::<&Contact>::new(), &["@a"], NOW + 60);
    assert_eq!(keys.key_of("@a"), None);
    assert_eq!(keys.find(key(&first[0])), KeyLookup::Absent);
    keys.update([&alice], &[], NOW + 120);
    assert_eq!(keys.key_of("@a"), first[0].as_deref());
}

#[test]
fn the_same_look_on_the_same_day_needs_no_write() {
    let mut keys = ContactKeys::new();
    let contacts = [
        person("@a", "Alice", ""),
        group("@@f", "Family", &["A", "B"]),
    ];
    login(&mut keys, &contacts, NOW);
    let (_, outcome) = login(&mut keys, &relogin(&contacts), NOW + 60);
    assert!(!outcome.changed);
    let (_, outcome) = login(&mut keys, &relogin(&contacts), NOW + DAY);
    assert!(outcome.changed, "another day is worth a write");
}

#[test]
fn the_book_round_trips_and_another_version_is_refused() {
    let mut keys = ContactKeys::new();
    let contacts = [
        person("@a", "Alice", "Mom"),
        group("@@f", "Family", &["A", "B"]),
    ];
    let (first, _) = login(&mut keys, &contacts, NOW);
    let bytes = keys.to_bytes();
    let mut back = ContactKeys::from_bytes(&bytes).unwrap();
    assert_eq!(back.key_of("@a"), None, "bindings are per login");
    let (again, _) = login(&mut back, &relogin(&contacts), NOW + DAY);
    assert_eq!(again, first);
    let other = br#"{"version":3,"keys":{}}"#;
    assert!(matches!(
        ContactKeys::from_bytes(other),
        Err(KeysError::Version(3))
    ));
    assert!(ContactKeys::from_bytes(b"nonsense").is_err());
}

#[test]
fn a_stored_book_holds_member_hashes_not_names() {
    let mut keys = ContactKeys::new();
    let members = ["Ann Longname", "Bob Longname", "Cy Longname"];
    login(&mut keys, &[group("@@f", "Family", &members)], NOW);
    let bytes = keys.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("Longname"), "{text}");
    let back = ContactKeys::from_bytes(&bytes).unwrap();
    let mut hashes: Vec<u64> = members.iter().map(|n| name_hash(n)).collect();
    hashes.sort_unstable();
    let stored = back.records.values().next().unwrap();
    assert_eq!(stored.member_hashes, hashes);
    assert!(matches!(
        ContactKeys::from_bytes(
            br#"{"version":2,"keys":{"c_aaaaaaaaaaaa":{"group":true,"member_hashes":"AAA="}}}"#
        ),
        Err(KeysError::Hashes(_))
    ));
}

#[test]
fn a_book_stored_with_member_names_still_binds_and_is_stored_again_with_hashes() {
    // As the first format wrote it: the members' cleaned nicknames.
    let v1 = format!(
        r#"{{"version":1,"keys":{{
            "c_aaaaaaaaaaaa":{{"remark":"","nick":"Family","sex":0,"province":"","city":"",
                "group":true,"members":6,
                "member_nicks":["Ann","Bob","Cy","Dee","Me","Zed"],"last_seen":{NOW}}},
            "c_bbbbbbbbbbbb":{{"remark":"","nick":"Family","sex":0,"province":"","city":"",
                "group":true,"members":3,
                "member_nicks":["Pa","Ma","Kid"],"last_seen":{NOW}}},
            "c_cccccccccccc":{{"remark":"Mom","nick":"Alice","sex":2,"province":"Zhejiang",
                "city":"Hangzhou","group":false,"members":0,"member_nicks":[],
                "last_seen":{NOW}}}}}}}"#
    );
    let mut keys = ContactKeys::from_bytes(v1.as_bytes()).unwrap();
    let contacts = [
        group("@@f", "Family", &["Ann", "Bob", "Cy", "Me", "Kim", "Lu"]),
        group("@@g", "Family", &["Pa", "Ma", "Kid"]),
        person("@a", "Alice", "Mom"),
    ];
    // The same day: only the format change makes it worth a write.
    let (bound, outcome) = login(&mut keys, &contacts, NOW + 60);
    assert!(outcome.ambiguous.is_empty());
    let bound: Vec<&str> = bound.iter().map(key).collect();
    assert_eq!(
        bound,
        ["c_aaaaaaaaaaaa", "c_bbbbbbbbbbbb", "c_cccccccccccc"]
    );
    assert!(outcome.changed, "the old format is stored again");
    let bytes = keys.to_bytes();
    assert!(String::from_utf8_lossy(&bytes).starts_with(r#"{"version":2,"#));
    let (_, outcome) = login(&mut keys, &relogin(&contacts), NOW + 120);
    assert!(!outcome.changed, "once is enough");
    let mut back = ContactKeys::from_bytes(&bytes).unwrap();
    let (again, _) = login(&mut back, &relogin(&contacts), NOW + DAY);
    let again: Vec<&str> = again.iter().map(key).collect();
    assert_eq!(again, bound);
}

#[test]
fn the_roster_lists_every_contact_with_its_key() {
    let mut keys = ContactKeys::new();
    let mut book = ContactBook::new(person("@self", "Me", ""));
    for c in [
        person("@a", "alice", "Mom"),
        person("@t1", "Twin", ""),
        person("@t2", "Twin", ""),
        group("@@f", "Family", &["A", "B", "C"]),
    ] {
        book.upsert(c);
    }
    keys.bind_login(book.iter(), NOW);
    let roster = keys.roster(&book);
    let ids: Vec<&str> = roster.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["@@f", "@a", "@t1", "@t2"]);
    assert_eq!(roster[0].members, Some(3));
    assert!(roster[0].group && roster[0].key.is_some());
    assert_eq!(roster[1].remark.as_deref(), Some("Mom"));
    assert_eq!(roster[1].key.as_deref(), keys.key_of("@a"));
    assert_eq!(roster[1].members, None);
    assert_eq!(roster[2].key, None, "look-alikes have no key");
}

#[test]
fn jaccard_counts_shared_names_over_all_names() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(jaccard(&s(&["a", "b"]), &s(&["a", "b"])), 1.0);
    assert_eq!(jaccard(&s(&["a", "b", "c"]), &s(&["b", "c", "d"])), 0.5);
    assert_eq!(jaccard(&s(&["a"]), &s(&["b"])), 0.0);
}

#[test]
fn a_large_book_keeps_every_key_across_a_login() {
    let mut contacts: Vec<Contact> = (0..5000)
        .map(|i| person(&format!("@p{i}"), &format!("Person {i}"), ""))
        .collect();
    for g in 0..200 {
        let members: Vec<String> = (0..200).map(|m| format!("M{g}-{m}")).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        // Same-named groups in pairs: only their members tell them apart.
        contacts.push(group(
            &format!("@@g{g}"),
            &format!("Group {}", g / 2),
            &members,
        ));
    }
    let mut keys = ContactKeys::new();
    let (first, outcome) = login(&mut keys, &contacts, NOW);
    assert!(outcome.ambiguous.is_empty());
    let (again, outcome) = login(&mut keys, &relogin(&contacts), NOW + DAY);
    assert!(outcome.ambiguous.is_empty());
    assert_eq!(again, first);
}
