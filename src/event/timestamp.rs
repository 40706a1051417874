//! Time on the wire: RFC 3339 in UTC with whole seconds and a `Z`, and the serde adapters the
//! event types use for their time fields, so every time reads back exactly as it was written.
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// Formats a time as RFC 3339 in UTC with whole seconds: `2026-11-28T16:20:01Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    // Only an I/O error of the target can fail this format, and a String has none.
    .unwrap_or_default()
}

/// Parses any RFC 3339 time and converts it to UTC with whole seconds, so that it reads back
/// unchanged from what [`rfc3339`] writes (a queued command keeps its `expires_at`).
///
/// A time whose UTC year falls outside 0000–9999, which an offset can cause at either end
/// (`9999-12-31T23:59:59-01:00`), is refused as a bad year: RFC 3339 cannot write it, and the
/// conversion would panic.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    let bad_year = time::error::Parse::ParseFromDescription(
        time::error::ParseFromDescription::InvalidComponent("year"),
    );
    let t = OffsetDateTime::parse(s, &Rfc3339)?
        .checked_to_offset(UtcOffset::UTC)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or(bad_year)?;
    Ok(t.replace_nanosecond(0).unwrap_or(t))
}

/// Serde adapter for a required [`OffsetDateTime`] in the [`rfc3339`] form.
pub(super) mod utc_time {
    use super::*;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(de::Error::custom)
    }
}

/// Serde adapter for an optional [`OffsetDateTime`] in the [`rfc3339`] form.
pub(super) mod utc_time_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| parse_rfc3339(&s).map_err(de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_is_utc_whole_seconds_with_z() {
        assert_eq!(
            rfc3339(datetime!(2026-11-28 18:20:01.999 +02:00)),
            "2026-11-28T16:20:01Z"
        );
        assert_eq!(rfc3339(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}

/// Properties of the time format on generated times (proptest).
#[cfg(test)]
pub(super) mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A time RFC 3339 can write: years 1 to 9999, whole seconds.
    pub(in crate::event) fn time() -> impl Strategy<Value = OffsetDateTime> {
        (-62_135_596_800i64..=253_402_300_799)
            .prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
    }

    proptest! {
        #[test]
        fn rfc3339_times_read_back_exactly(t in time()) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(t)).unwrap(), t);
        }
    }
}
