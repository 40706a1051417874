//! Properties of normalizing on generated input (proptest): a group message's text is the
//! cleaned body, whatever the body holds.
use proptest::prelude::*;

use super::*;
use crate::wechat::protocol::{Contact, Member};
use crate::wechat::text::properties::content;

proptest! {

    #[test]
    fn group_text_is_the_cleaned_body_from_the_prefixed_member(
        member in prop::sample::select(vec!["@a81", "@b22", "@zz9"]),
        body in content(),
    ) {
        let mut book = ContactBook::new(Contact {
            user_name: "@self".into(),
            nick_name: "Sam".into(),
            ..Contact::default()
        });
        book.upsert(Contact {
            user_name: "@@9f3".into(),
            nick_name: "Family".into(),
            member_list: vec![Member {
                user_name: "@a81".into(),
                nick_name: "Alice".into(),
                ..Member::default()
            }].into(),
            ..Contact::default()
        });
        let msg = AddMsg {
            msg_id: "1".into(),
            from_user_name: "@@9f3".into(),
            to_user_name: "@self".into(),
            msg_type: 1,
            content: format!("{member}:<br/>{body}"),
            ..AddMsg::default()
        };
        let ctx = Context { account: "home", book: &book, sent_by_bridge: None };
        let event = normalize(&msg, &ctx).unwrap();
        prop_assert_eq!(event.from.id.as_str(), member);
        let cleaned = clean_text(&body);
        prop_assert_eq!(event.text.as_deref(), Some(cleaned.as_str()));
        prop_assert_eq!(event.chat.id.as_str(), "@@9f3");
        prop_assert!(serde_json::to_string(&event).is_ok());
    }
}
