//! Properties of recipient resolution on generated books (proptest): names are drawn from a
//! tiny alphabet so that clashes, case variants and escaped spellings are common.
use proptest::prelude::*;

use super::*;

/// A name as WeChat may spell it: a few letters, maybe an entity or an emoji span.
fn name() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a",
        "A",
        "b",
        " ",
        "&amp;",
        "<span class=\"emoji emoji1f604\"></span>",
        "😄",
        "filehelper",
    ]);
    prop::collection::vec(piece, 0..3).prop_map(|p| p.concat())
}

fn book() -> impl Strategy<Value = ContactBook> {
    let contact = (name(), name(), any::<bool>());
    prop::collection::vec(contact, 0..8).prop_map(|contacts| {
        let mut book = ContactBook::new(Contact {
            user_name: "@self".into(),
            nick_name: "a".into(),
            remark_name: "b".into(),
            ..Contact::default()
        });
        for (i, (nick, remark, group)) in contacts.into_iter().enumerate() {
            book.upsert(Contact {
                user_name: if group {
                    format!("@@g{i}")
                } else {
                    format!("@p{i}")
                },
                nick_name: nick,
                remark_name: if group { String::new() } else { remark },
                ..Contact::default()
            });
        }
        book
    })
}

/// The names resolution compares for a contact.
fn names(c: &Contact) -> [String; 2] {
    [clean_name(&c.remark_name), clean_name(&c.nick_name)]
}

proptest! {
    #[test]
    fn a_resolved_contact_always_bears_the_name_asked_for(book in book(), to in name()) {
        let lower = to.to_lowercase();
        match book.resolve(&to) {
            Ok(c) => {
                prop_assert!(!book.is_self(&c.user_name));
                let named = names(c)
                    .iter()
                    .any(|n| !n.is_empty() && (*n == to || n.to_lowercase() == lower));
                prop_assert!(named || lower == FILEHELPER, "{to:?} resolved to {c:?}");
                prop_assert_eq!(
                    c.user_name == FILEHELPER,
                    lower == FILEHELPER,
                    "{:?} resolved to {:?}", to, c
                );
            }
            Err(ResolveError::Ambiguous { candidates, .. }) => {
                prop_assert!(lower != FILEHELPER);
                prop_assert!(candidates.len() >= 2);
            }
            Err(ResolveError::Unknown { suggestions, .. }) => {
                prop_assert!(lower != FILEHELPER);
                prop_assert!(suggestions.len() <= MAX_SUGGESTIONS);
                for c in book.iter() {
                    for n in names(c) {
                        prop_assert!(n.is_empty() || n.to_lowercase() != lower, "{n:?} was missed");
                    }
                }
            }
        }
    }

    #[test]
    fn a_unique_remark_resolves_to_its_contact(book in book()) {
        for c in book.iter() {
            let remark = clean_name(&c.remark_name);
            let same = book.iter().filter(|o| clean_name(&o.remark_name) == remark).count();
            // `filehelper` is the helper's name whoever bears it as a remark.
            if !remark.is_empty() && same == 1 && remark.to_lowercase() != FILEHELPER {
                prop_assert_eq!(&book.resolve(&remark).unwrap().user_name, &c.user_name);
            }
        }
    }

    #[test]
    fn every_contact_but_self_resolves_by_id(book in book()) {
        for c in book.iter() {
            prop_assert_eq!(&book.resolve_id(&c.user_name).unwrap().user_name, &c.user_name);
        }
        prop_assert!(book.resolve_id("@self").is_none());
    }
}
