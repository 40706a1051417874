//! What the fake serves: an address book of a given size and a deterministic, realistic
//! mix of inbound messages (private and group, mostly short texts with some long ones,
//! emoji, entities and mentions, plus images, stickers, voice notes, links, files…).
use std::collections::HashSet;

use wxbridge_fake::{ContactInfo, FakeWeChat, GroupInfo, Msg};

use crate::settings::BookSize;
use crate::tally::LATENCY_TAG;

/// A small deterministic generator (xorshift64*): the same seed gives the same workload.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced, xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// One of `items` (non-empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `words` (non-empty).
    pub fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len())]
    }
}

const GIVEN: &[&str] = &[
    "Alice", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hannah", "Ivan", "Julia", "Kevin",
    "Lily", "Marco", "Nina", "Oscar", "Priya", "Quinn", "Rosa", "Sam", "Tina",
];
const FAMILY: &[&str] = &[
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Smith", "Müller",
    "Rossi", "Garcia", "O'Brien",
];
const ZH_NAMES: &[&str] = &[
    "小明",
    "王芳",
    "李雷",
    "韩梅梅",
    "张伟",
    "刘洋",
    "陈静",
    "杨帆",
    "赵磊",
    "周杰",
    "吴敏",
    "老爸",
    "妈妈",
    "大表哥",
    "阿强",
];
const DECOR: &[&str] = &["", "", "", "", " 🌸", " 🐱", " ☀️", " 🎵", "✨", " 🇨🇳"];
const REMARK_TAGS: &[&str] = &["work", "gym", "家人", "school"];
const DISPLAY_TAGS: &[&str] = &["🏃", "(3B)", "", "老师"];
const GROUP_NAMES: &[&str] = &[
    "Family",
    "Weekend Hiking",
    "Project Falcon",
    "读书会",
    "Class of 2012",
    "小区业主群",
    "Badminton Tuesdays",
    "Office Lunch",
    "Parents of 3B",
    "公司通知群",
    "Book Club",
    "Travel Japan 2026",
];

const SHORT: &[&str] = &[
    "ok",
    "好的",
    "收到",
    "👍",
    "on my way",
    "see you at 7?",
    "哈哈哈哈😂",
    "thanks!",
    "我到楼下了",
    "lol",
    "sure, why not",
    "稍等一下",
    "Yes & no",
    "晚安🌙",
    "here",
    "Call me when you're free",
    "辛苦了👍",
    "what time?",
    "明天见",
    "Happy birthday!! 🎂🎉",
];
const SENTENCES: &[&str] = &[
    "Can you send me the report by Friday?",
    "I'll be 10 min late, traffic is terrible on the ring road.",
    "明天的会议改到下午三点，地点不变。",
    "Did you see the news about the new metro line opening next month?",
    "这个周末去爬山吧，天气预报说是晴天☀️",
    "Price is ¥35 & includes <delivery> to the door.",
    "She said \"maybe later\" and left.",
    "请大家在周五之前提交报告，谢谢！",
    "The kids loved the zoo 🦁🐼 — we should go again in spring.",
    "我把照片发到群相册里了，大家自己下载。",
    "Reminder: rent is due on the 1st, please transfer before noon.",
    "Has anyone got a spare charger for a Type-C laptop?",
    "周六上午十点在老地方集合，别迟到。",
    "Flight CA1234 lands at 18:45, terminal 3.",
];

fn name(rng: &mut Rng) -> String {
    let base = if rng.below(3) == 0 {
        (rng.word(ZH_NAMES)).to_owned()
    } else {
        format!("{} {}", rng.word(GIVEN), rng.word(FAMILY))
    };
    format!("{base}{}", rng.word(DECOR))
}

/// `name(rng)`, made unique among `taken` (a number is appended on a clash), so a send
/// command can name anyone without being ambiguous.
fn unique_name(rng: &mut Rng, taken: &mut HashSet<String>) -> String {
    let base = name(rng);
    let mut candidate = base.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{base} {n}");
        n += 1;
    }
    candidate
}

/// A chat text of realistic length: mostly a few words, sometimes a paragraph, rarely a
/// pasted article.
pub fn chat_text(rng: &mut Rng) -> String {
    let roll = rng.below(100);
    if roll < 55 {
        return (rng.word(SHORT)).to_owned();
    }
    let (min, spread) = match roll {
        55..=84 => (1, 3),
        85..=96 => (4, 8),
        _ => (25, 30),
    };
    let n = min + rng.below(spread);
    let mut out = String::new();
    for i in 0..n {
        if i > 0 {
            out.push(if rng.below(6) == 0 { '\n' } else { ' ' });
        }
        out.push_str(rng.word(SENTENCES));
    }
    out
}

/// The fake's account, friends and groups, as the benchmark addresses them.
#[derive(Debug, Clone)]
pub struct BookInfo {
    /// The account itself.
    pub me: ContactInfo,
    /// Friends (never groups).
    pub friends: Vec<ContactInfo>,
    /// Saved groups; each member list ends with the account.
    pub groups: Vec<GroupInfo>,
}

/// Fills `fake`'s address book: `size.contacts` friends (a third with a remark) and
/// `size.groups` saved groups whose members are a tenth friends, the rest strangers known
/// only through the group (some with a group display name).
pub fn populate(fake: &FakeWeChat, size: BookSize, seed: u64) -> BookInfo {
    let mut rng = Rng::new(seed);
    let mut taken = HashSet::new();
    let mut friends = Vec::with_capacity(size.contacts);
    for i in 0..size.contacts {
        let nick = unique_name(&mut rng, &mut taken);
        let remark = if i % 3 == 0 {
            format!("{} ({})", rng.word(GIVEN), rng.word(REMARK_TAGS))
        } else {
            String::new()
        };
        let remark = if remark.is_empty() || taken.insert(remark.clone()) {
            remark
        } else {
            String::new()
        };
        let user_name = fake.add_contact(&nick, &remark);
        friends.push(ContactInfo {
            user_name,
            nick_name: nick,
            remark_name: remark,
            display_name: String::new(),
        });
    }
    let mut groups = Vec::with_capacity(size.groups);
    for g in 0..size.groups {
        let others = size.group_size.saturating_sub(1);
        let members: Vec<(String, String)> = (0..others)
            .map(|m| {
                let nick = if m % 10 == 0 && !friends.is_empty() {
                    rng.pick(&friends).nick_name.clone()
                } else {
                    format!("{}·{g}.{m}", name(&mut rng))
                };
                let display = if rng.below(4) == 0 {
                    format!("{} {}", rng.word(GIVEN), rng.word(DISPLAY_TAGS))
                } else {
                    String::new()
                };
                (nick, display)
            })
            .collect();
        let refs: Vec<(&str, &str)> = members
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_str()))
            .collect();
        let title = format!("{} {}", GROUP_NAMES[g % GROUP_NAMES.len()], g + 1);
        groups.push(fake.add_group(&title, &refs, true));
    }
    BookInfo {
        me: fake.self_user(),
        friends,
        groups,
    }
}

/// `n` inbound messages: about two thirds texts (private, group, a few with a mention of
/// the account, a few written on the phone), the rest images, stickers, voice notes, links,
/// files, videos, locations and group notices, half of them in groups.
pub fn mix(book: &BookInfo, n: usize, seed: u64) -> Vec<Msg> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| one(book, &mut rng)).collect()
}

/// A media kind of [`media_mix`], as an event's `media.kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// A photo (MsgType 3), 50–200 KB.
    Image,
    /// A voice note (MsgType 34), 10–30 KB.
    Voice,
    /// A sticker (MsgType 47), about 40 KB.
    Emoticon,
    /// An attachment (AppMsgType 6), about 1 MB.
    File,
}

impl MediaKind {
    /// Every kind, in report order.
    pub const ALL: [MediaKind; 4] = [
        MediaKind::Image,
        MediaKind::Voice,
        MediaKind::Emoticon,
        MediaKind::File,
    ];

    /// Its name in events and in the report.
    pub fn label(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Emoticon => "emoticon",
            MediaKind::File => "file",
        }
    }
}

/// `n` inbound messages of which about a third carry media the bridge downloads: 16 % images
/// of 50–200 KB, 8 % voice notes of 10–30 KB (their length following their size, as MP3 at
/// 32 kbit/s), 7 % stickers of 35–45 KB and 1 % files of 0.9–1.1 MB; the rest texts, private
/// and group. Each message comes with its media kind; half the media go to groups.
pub fn media_mix(book: &BookInfo, n: usize, seed: u64) -> Vec<(Msg, Option<MediaKind>)> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let roll = rng.below(100);
            let from = friend(book, &mut rng).to_owned();
            let group = pick_group(book, &mut rng);
            let in_group = rng.below(2) == 0;
            let (kind, len) = match roll {
                0..=66 | 99 => {
                    let text = chat_text(&mut rng);
                    let msg = match group {
                        Some((g, m)) if in_group => Msg::group_text(g, m, &text),
                        _ => Msg::text(&from, &text),
                    };
                    return (msg, None);
                }
                67..=82 => (MediaKind::Image, 50_000 + rng.below(150_001) as u64),
                83..=90 => (MediaKind::Voice, 10_000 + rng.below(20_001) as u64),
                91..=97 => (MediaKind::Emoticon, 35_000 + rng.below(10_001) as u64),
                _ => (MediaKind::File, 900_000 + rng.below(200_001) as u64),
            };
            let msg = match kind {
                MediaKind::Image => Msg::image(&from),
                // 32 kbit/s: 4 bytes a millisecond.
                MediaKind::Voice => Msg::voice(&from, len / 4),
                MediaKind::Emoticon => Msg::emoticon(&from),
                MediaKind::File => Msg::file(&from, "site survey & photos.pdf", len),
            }
            .media_len(len);
            let msg = match group {
                Some((g, m)) if in_group => msg.in_group(g, m),
                _ => msg,
            };
            (msg, Some(kind))
        })
        .collect()
}

/// `n` text messages (private and group) whose text starts with [`LATENCY_TAG`]`<i>#`.
pub fn tagged(book: &BookInfo, n: usize, seed: u64) -> Vec<Msg> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let text = format!("{LATENCY_TAG}{i}# {}", chat_text(&mut rng));
            match pick_group(book, &mut rng) {
                Some((g, m)) if rng.below(2) == 0 => Msg::group_text(g, m, &text),
                _ => Msg::text(friend(book, &mut rng), &text),
            }
        })
        .collect()
}

fn friend<'a>(book: &'a BookInfo, rng: &mut Rng) -> &'a str {
    match book.friends.is_empty() {
        true => "filehelper",
        false => &rng.pick(&book.friends).user_name,
    }
}

/// A group and one of its members other than the account.
fn pick_group<'a>(book: &'a BookInfo, rng: &mut Rng) -> Option<(&'a str, &'a str)> {
    if book.groups.is_empty() {
        return None;
    }
    let g = rng.pick(&book.groups);
    let others = g.members.len().checked_sub(1).filter(|n| *n > 0)?;
    let m = &g.members[rng.below(others)];
    Some((&g.user_name, &m.user_name))
}

fn one(book: &BookInfo, rng: &mut Rng) -> Msg {
    let roll = rng.below(100);
    let from = friend(book, rng).to_owned();
    let group = pick_group(book, rng).map(|(g, m)| (g.to_owned(), m.to_owned()));
    let in_group = rng.below(2) == 0;
    // Non-text types go to a group half of the time.
    let place = |msg: Msg| match (&group, in_group) {
        (Some((g, m)), true) => msg.in_group(g, m),
        _ => msg,
    };
    match (roll, &group) {
        (0..=35, _) | (36..=61, None) => Msg::text(&from, &chat_text(rng)),
        (36..=61, Some((g, m))) => Msg::group_text(g, m, &chat_text(rng)),
        (62..=63, _) => Msg::phone_text(&from, &chat_text(rng)),
        (64..=71, _) => place(Msg::image(&from)),
        (72..=76, _) => place(Msg::emoticon(&from)),
        (77..=80, _) => place(Msg::voice(&from, 1_000 + 1_000 * rng.below(40) as u64)),
        (81..=88, _) => place(Msg::link(
            &from,
            rng.word(SENTENCES),
            rng.word(SENTENCES),
            "https://mp.weixin.qq.com/s?__biz=MzA5&mid=2650&idx=1&sn=8c1f",
        )),
        (89..=90, _) => place(Msg::file(&from, "Q3 report & budget.pdf", 482_133)),
        (91, _) => place(Msg::video(&from, 5 + rng.below(90) as u64)),
        (92, _) => Msg::location(&from, "Sanlitun, Chaoyang District", 39.93, 116.45),
        (93, Some((g, _))) => Msg::system(g, "\"Ivan Li\" joined the group chat"),
        (_, Some((g, m))) => {
            let me = &book.me.nick_name;
            Msg::group_text(g, m, &format!("@{me}\u{2005}{}", chat_text(rng)))
        }
        _ => Msg::text(&from, &chat_text(rng)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_mostly_short_with_a_long_tail() {
        let mut rng = Rng::new(7);
        let lens: Vec<usize> = (0..2000).map(|_| chat_text(&mut rng).len()).collect();
        let short = lens.iter().filter(|l| **l < 40).count();
        let long = lens.iter().filter(|l| **l > 1000).count();
        assert!(short > 900 && short < 1400, "short texts: {short}");
        assert!(long > 10 && long < 150, "long texts: {long}");
    }

    #[test]
    fn a_third_of_the_media_mix_is_media_of_every_kind() {
        let fake_book = BookInfo {
            me: ContactInfo {
                user_name: "@me".into(),
                nick_name: "me".into(),
                remark_name: String::new(),
                display_name: String::new(),
            },
            friends: Vec::new(),
            groups: Vec::new(),
        };
        let mix = media_mix(&fake_book, 1_000, 3);
        let count = |k: MediaKind| mix.iter().filter(|(_, m)| *m == Some(k)).count();
        let media = mix.iter().filter(|(_, m)| m.is_some()).count();
        assert!((280..=380).contains(&media), "media: {media}");
        for k in MediaKind::ALL {
            assert!(count(k) > 0, "no {}", k.label());
        }
        let again = media_mix(&fake_book, 1_000, 3);
        let kinds = |m: &[(Msg, Option<MediaKind>)]| m.iter().map(|(_, k)| *k).collect::<Vec<_>>();
        assert_eq!(kinds(&mix), kinds(&again), "the same seed, the same mix");
    }

    #[test]
    fn names_are_unique() {
        let mut rng = Rng::new(1);
        let mut taken = HashSet::new();
        let names: Vec<String> = (0..500)
            .map(|_| unique_name(&mut rng, &mut taken))
            .collect();
        let distinct: HashSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), 500);
    }
}
