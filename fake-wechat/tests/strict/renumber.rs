//! UserNames last one login (§5.3): a new login hands out new ones everywhere, the old ones
//! are refused, and what was queued before it arrives under the new names.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Value};
use wxbridge_fake::Msg;

use crate::support::{logged_in, start, Client};

/// Every entry of the address book (one page is enough for these books).
async fn address_book(c: &Client) -> Vec<Value> {
    let text = c.contact_page(0).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["Seq"], 0, "one page");
    v["MemberList"].as_array().unwrap().clone()
}

async fn batch(c: &Client, list: Value) -> Value {
    let n = list.as_array().unwrap().len();
    let body = json!({"BaseRequest": c.base_request(), "Count": n, "List": list});
    let (_, v) = c.post("webwxbatchgetcontact", &body).await;
    assert_eq!(v["BaseResponse"]["Ret"], 0, "{v}");
    v
}

fn entry<'a>(book: &'a [Value], nick: &str) -> &'a Value {
    book.iter()
        .find(|c| c["NickName"] == nick)
        .unwrap_or_else(|| panic!("{nick} is not in the address book"))
}

fn panics(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("should panic");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_new_login_hands_out_new_user_names_and_refuses_the_old_ones() {
    let fake = start().await;
    let alice = fake.add_contact_with("Alice", "Mom", 2, "广东", "深圳");
    let family = fake.add_group("Family", &[("Alice", "Mum"), ("Carol", "")], true);
    let carol = family.members[1].user_name.clone();
    let first = logged_in(&fake).await;
    let me = first.me.clone();
    let before = address_book(&first).await;
    assert_eq!(entry(&before, "Alice")["UserName"], alice.as_str());
    // Queued under the first login's names, not yet read when the second login comes.
    fake.queue(Msg::group_text(&family.user_name, &carol, "still there?"));
    let second = logged_in(&fake).await;
    assert_eq!(fake.logins(), 2);

    let alice2 = fake.user_name_of("Alice");
    let family2 = fake.user_name_of("Family");
    assert_ne!(second.me, me, "the account's own UserName changes too");
    assert_eq!(second.me, fake.self_user().user_name);
    assert_ne!(alice2, alice);
    assert_ne!(family2, family.user_name);
    assert!(alice2.starts_with('@') && !alice2.starts_with("@@") && alice2.len() == 33);
    assert!(family2.starts_with("@@") && family2.len() == 66);

    let after = address_book(&second).await;
    assert_eq!(after.len(), before.len());
    let a = entry(&after, "Alice");
    assert_eq!(a["UserName"], alice2.as_str());
    assert_eq!(
        (&a["RemarkName"], &a["Sex"], &a["Province"], &a["City"]),
        (&json!("Mom"), &json!(2), &json!("广东"), &json!("深圳")),
        "a profile outlives its UserName"
    );
    for (old, new) in before.iter().zip(&after) {
        let (old, new) = (old["UserName"].as_str(), new["UserName"].as_str());
        match old {
            Some(o) if o.starts_with('@') => assert_ne!(Some(o), new),
            _ => assert_eq!(old, new, "fixed names such as filehelper stay"),
        }
    }

    let group = fake.group(&family2).unwrap();
    let carol2 = group.members[1].user_name.clone();
    assert_ne!(carol2, carol, "a member who is not a friend is renamed too");
    assert_eq!(
        group.members[0].user_name, alice2,
        "a friend in a group is the friend"
    );
    let v = batch(
        &second,
        json!([{"UserName": family2, "EncryChatRoomId": ""},
               {"UserName": family.user_name, "EncryChatRoomId": ""},
               {"UserName": alice, "EncryChatRoomId": ""},
               {"UserName": carol, "EncryChatRoomId": family2}]),
    )
    .await;
    assert_eq!(v["Count"], 1, "old UserNames name no one: {v}");
    let members: Vec<&str> = v["ContactList"][0]["MemberList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        [alice2.as_str(), carol2.as_str(), second.me.as_str()]
    );

    let mut second = second;
    let v = second.sync().await;
    let msg = &v["AddMsgList"][0];
    assert_eq!(msg["FromUserName"], family2.as_str(), "{v}");
    assert_eq!(msg["ToUserName"], second.me.as_str());
    assert_eq!(msg["Content"], format!("{carol2}:<br/>still there?"));

    let stale = second
        .send_text(&alice, "hi", json!("17000000000000001"))
        .await;
    assert_eq!(stale["BaseResponse"]["Ret"], 1201, "{stale}");
    assert_eq!(stale["MsgID"], "");
    let unknown = format!("@{}", "0".repeat(32));
    let never = second
        .send_text(&unknown, "hi", json!("17000000000000002"))
        .await;
    assert_eq!(never["BaseResponse"]["Ret"], 1, "a name never handed out");
    let ok = second
        .send_text(&alice2, "hi", json!("17000000000000003"))
        .await;
    assert_eq!(ok["BaseResponse"]["Ret"], 0, "{ok}");
    assert_eq!(fake.sent().len(), 1);
    assert_eq!(fake.sent()[0].to, alice2);
}

#[tokio::test]
async fn resuming_a_session_keeps_the_user_names() {
    let fake = start().await;
    let alice = fake.add_contact("Alice", "");
    let mut c = logged_in(&fake).await;
    let me = c.me.clone();
    c.init().await;
    assert_eq!(c.me, me, "webwxinit again is the same session");
    assert_eq!(fake.user_name_of("Alice"), alice);
}

#[tokio::test]
async fn controls_given_an_old_user_name_say_to_look_it_up_again() {
    let fake = start().await;
    let alice = fake.add_contact("Alice", "");
    logged_in(&fake).await;
    logged_in(&fake).await;
    for why in [
        panics(|| fake.set_nick(&alice, "Ally")),
        panics(|| fake.set_remark(&alice, "A")),
        panics(|| {
            fake.queue(Msg::text(&alice, "hi"));
        }),
    ] {
        assert!(why.contains("earlier login"), "{why}");
    }
    fake.set_nick(&fake.user_name_of("Alice"), "Ally");
    assert_eq!(fake.user_names_of("Ally").len(), 1);
}

#[tokio::test]
async fn look_alikes_differ_only_by_user_name_and_keep_their_order() {
    let fake = start().await;
    let one = fake.add_contact_with("Sam", "", 1, "江苏", "南京");
    let two = fake.add_contact_with("Sam", "", 1, "江苏", "南京");
    let c = logged_in(&fake).await;
    let book = address_book(&c).await;
    let sams: Vec<&Value> = book.iter().filter(|e| e["NickName"] == "Sam").collect();
    assert_eq!(sams.len(), 2);
    for field in [
        "RemarkName",
        "Sex",
        "Province",
        "City",
        "ContactFlag",
        "VerifyFlag",
    ] {
        assert_eq!(sams[0][field], sams[1][field], "{field}");
    }
    assert_eq!(fake.user_names_of("Sam"), [one.clone(), two.clone()]);
    let why = panics(|| {
        fake.user_name_of("Sam");
    });
    assert!(why.contains("2 contacts"), "{why}");
    fake.set_details(&two, 2, "浙江", "杭州");
    assert_eq!(fake.details(&two).unwrap().province, "浙江");
    logged_in(&fake).await;
    let renamed = fake.user_names_of("Sam");
    assert!(!renamed.contains(&one) && !renamed.contains(&two));
    assert_eq!(fake.details(&renamed[1]).unwrap().city, "杭州");
    assert_eq!(fake.details(&renamed[0]).unwrap().city, "南京");
}
