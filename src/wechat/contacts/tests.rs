//! Unit tests of `contacts`.
use super::*;

fn person(id: &str, nick: &str, remark: &str) -> Contact {
    Contact {
        user_name: id.into(),
        nick_name: nick.into(),
        remark_name: remark.into(),
        ..Contact::default()
    }
}

fn group(id: &str, name: &str, members: &[(&str, &str, &str)]) -> Contact {
    Contact {
        user_name: id.into(),
        nick_name: name.into(),
        member_count: members.len() as u64,
        member_list: members
            .iter()
            .map(|(u, n, d)| Member {
                user_name: (*u).into(),
                nick_name: (*n).into(),
                display_name: (*d).into(),
            })
            .collect(),
        ..Contact::default()
    }
}

fn book() -> ContactBook {
    let mut b = ContactBook::new(person("@self", "Me", ""));
    b.upsert(person("@mom", "Alice", "Mom"));
    b.upsert(person("@alice2", "Alice", ""));
    b.upsert(person(
        "@bob",
        "Bob <span class=\"emoji emoji1f604\"></span>",
        "",
    ));
    b.upsert(person("@carol", "Mom", ""));
    b.upsert(group("@@fam", "Family", &[("@mom", "Alice", "Mama")]));
    b.upsert(group("@@bobs", "Bob", &[]));
    b
}

#[test]
fn remark_tier_beats_a_clashing_nickname() {
    assert_eq!(book().resolve("Mom").unwrap().user_name, "@mom");
}

#[test]
fn two_matches_in_the_deciding_tier_are_ambiguous() {
    let err = book().resolve("Alice").unwrap_err();
    assert_eq!(err.code(), ErrorCode::AmbiguousRecipient);
    let ResolveError::Ambiguous { candidates, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        candidates,
        &[
            ("@alice2".to_string(), "Alice".to_string()),
            ("@mom".to_string(), "Mom".to_string())
        ]
    );
    assert!(err.to_string().contains("Mom (@mom)"));
}

#[test]
fn nicknames_are_compared_cleaned_and_persons_before_groups() {
    let b = book();
    assert_eq!(b.resolve("Bob 😄").unwrap().user_name, "@bob");
    assert_eq!(b.resolve("Bob").unwrap().user_name, "@@bobs");
    assert_eq!(b.resolve("Family").unwrap().user_name, "@@fam");
}

#[test]
fn filehelper_resolves_even_when_not_listed() {
    let b = book();
    let c = b.resolve("filehelper").unwrap();
    assert_eq!(c.user_name, FILEHELPER);
    assert_eq!(c.nick_name, "File Transfer");
    assert_eq!(
        book().resolve_id("filehelper").unwrap().user_name,
        FILEHELPER
    );
    let mut listed = book();
    listed.upsert(person("filehelper", "文件传输助手", ""));
    assert_eq!(
        listed.resolve("filehelper").unwrap().nick_name,
        "文件传输助手"
    );
}

#[test]
fn filehelper_is_never_a_contact_that_took_the_name() {
    let mut b = book();
    b.upsert(person("@stranger", "filehelper", ""));
    b.upsert(person("@other", "FileHelper", ""));
    b.upsert(group("@@fh", "filehelper", &[]));
    for to in ["filehelper", "FileHelper", "FILEHELPER"] {
        assert_eq!(b.resolve(to).unwrap().user_name, FILEHELPER, "{to}");
    }
    // Even a remark the owner set does not take the name away from the helper.
    b.upsert(person("@remarked", "X", "filehelper"));
    assert_eq!(b.resolve("filehelper").unwrap().user_name, FILEHELPER);
}

#[test]
fn case_insensitive_match_is_a_last_resort_and_must_be_unique() {
    let b = book();
    assert_eq!(b.resolve("family").unwrap().user_name, "@@fam");
    let mut b2 = b.clone();
    b2.upsert(person("@fam2", "FAMILY", ""));
    assert!(matches!(
        b2.resolve("family"),
        Err(ResolveError::Ambiguous { .. })
    ));
    assert_eq!(b2.resolve("Family").unwrap().user_name, "@@fam");
}

#[test]
fn unknown_names_suggest_close_ones() {
    let err = book().resolve("ali").unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownRecipient);
    let ResolveError::Unknown { suggestions, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(suggestions, &["Alice".to_string()]);
    assert!(err.to_string().contains("did you mean: Alice"));
    assert!(book().resolve_id("@nobody").is_none());
}

#[test]
fn self_is_not_a_recipient_by_name() {
    let b = book();
    assert!(b.resolve("Me").is_err());
    assert!(b.resolve_id("@self").is_none());
    assert!(b.is_self("@self"));
    assert_eq!(b.get("@self").unwrap().nick_name, "Me");
    assert_eq!(b.len(), 6);
}

#[test]
fn memberless_group_entry_keeps_known_members() {
    let mut b = book();
    let mut renamed = group("@@fam", "Family 2", &[]);
    renamed.member_count = 0;
    assert!(b.upsert_changed(renamed));
    let fam = b.get("@@fam").unwrap();
    assert_eq!(fam.nick_name, "Family 2");
    assert_eq!(fam.member_list.len(), 1);
    assert_eq!(fam.member_count, 1);
    assert_eq!(b.member("@@fam", "@mom").unwrap().display_name, "Mama");
    assert!(!b.upsert_changed(b.get("@@fam").unwrap().clone()));
}

#[test]
fn missing_for_asks_for_unknown_groups_and_members_once() {
    let b = book();
    let msg = |from: &str, to: &str, content: &str| AddMsg {
        msg_id: "1".into(),
        msg_type: 1,
        from_user_name: from.into(),
        to_user_name: to.into(),
        content: content.into(),
        ..AddMsg::default()
    };
    let msgs = [
        msg("@@fam", "@self", "@mom:<br/>hi"),
        msg("@@fam", "@self", "@dave:<br/>hi"),
        msg("@@fam", "@self", "@dave:<br/>again"),
        msg("@@new", "@self", "@x:<br/>hi"),
        msg("@self", "@@new2", "mine"),
        msg("@@bobs", "@self", "@y:<br/>hi"),
        msg("@stranger", "@self", "hello"),
        msg("@self", "filehelper", "note"),
        AddMsg {
            msg_type: 51,
            ..msg("@self", "@self", "")
        },
    ];
    let want = b.missing_for(&msgs);
    let item = |u: &str, g: &str| BatchItem {
        user_name: u.into(),
        encry_chat_room_id: g.into(),
    };
    assert_eq!(
        want,
        [
            item("@dave", "@@fam"),
            item("@@new", ""),
            item("@@new2", ""),
            item("@@bobs", ""),
            item("@stranger", ""),
        ]
    );
}

#[test]
fn batch_members_join_their_group_not_the_book() {
    let mut b = book();
    let requested = [BatchItem {
        user_name: "@dave".into(),
        encry_chat_room_id: "@@fam".into(),
    }];
    b.apply_batch(&requested, vec![person("@dave", "Dave", "")]);
    assert!(b.get("@dave").is_none());
    assert_eq!(b.member("@@fam", "@dave").unwrap().nick_name, "Dave");
    b.apply_batch(&[], vec![group("@@new", "New", &[("@x", "X", "")])]);
    assert_eq!(b.member("@@new", "@x").unwrap().nick_name, "X");
}

#[test]
fn changes_report_added_modified_and_removed() {
    let mut b = book();
    let changes = b.apply_changes(
        vec![
            person("@erin", "Erin", ""),
            person("@bob", "Bobby", "B"),
            person("@carol", "Mom", ""),
        ],
        vec![person("@alice2", "", ""), person("@ghost", "", "")],
    );
    assert_eq!(changes.added.len(), 1);
    assert_eq!(changes.added[0].name, "Erin");
    assert_eq!(changes.modified.len(), 1);
    assert_eq!(changes.modified[0].remark.as_deref(), Some("B"));
    assert_eq!(changes.removed.len(), 1);
    assert_eq!(changes.removed[0].id, "@alice2");
    assert!(b.get("@alice2").is_none());
    assert!(b.apply_changes(vec![], vec![]).is_empty());
}

#[test]
fn display_names_prefer_remark_and_are_cleaned() {
    let b = book();
    assert_eq!(b.name_of("@mom"), "Mom");
    assert_eq!(b.name_of("@bob"), "Bob 😄");
    assert_eq!(b.name_of("@unknown"), "@unknown");
    assert_eq!(b.name_of("filehelper"), "File Transfer");
}
