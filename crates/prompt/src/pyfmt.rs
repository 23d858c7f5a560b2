//! Python's spelling of values where chat templates can see it: `json.dumps` (transformers
//! replaces Jinja's `tojson` filter with it) and `datetime.now().strftime` (`strftime_now`).

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Options of `json.dumps` that transformers' `tojson` filter exposes.
pub(crate) struct JsonStyle {
    pub ensure_ascii: bool,
    /// `None` = one line; `Some(s)` = newline and `s` per nesting level.
    pub indent: Option<String>,
    pub item_sep: String,
    pub key_sep: String,
    pub sort_keys: bool,
}

impl JsonStyle {
    /// `json.dumps` defaults for the given indent: separators `(", ", ": ")` on one line and
    /// `(",", ": ")` when indenting (Python docs, `json.dump`).
    pub fn new(indent: Option<String>) -> JsonStyle {
        let item_sep = if indent.is_some() { "," } else { ", " };
        JsonStyle {
            ensure_ascii: false,
            indent,
            item_sep: item_sep.to_owned(),
            key_sep: ": ".to_owned(),
            sort_keys: false,
        }
    }
}

/// `json.dumps(value, ...)` of a template value.
pub(crate) fn dumps(value: &Value, style: &JsonStyle) -> Result<String, Error> {
    let mut out = String::new();
    write_value(&mut out, value, style, 0)?;
    Ok(out)
}

fn newline(out: &mut String, style: &JsonStyle, level: usize) {
    if let Some(ind) = &style.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, style: &JsonStyle, level: usize) -> Result<(), Error> {
    match v.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else if v.is_integer() {
                // Beyond i64 (u64 / i128): the integer's own digits.
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone())?;
                out.push_str(&float_repr(f));
            }
        }
        ValueKind::String => write_str(out, v.as_str().unwrap_or_default(), style.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, style, level + 1);
                write_value(out, item, style, level + 1)?;
            }
            newline(out, style, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if style.sort_keys {
                keys.sort();
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&style.item_sep);
                }
                newline(out, style, level + 1);
                // json.dumps turns non-string keys into strings.
                match key.as_str() {
                    Some(s) => write_str(out, s, style.ensure_ascii),
                    None => write_str(out, &key.to_string(), style.ensure_ascii),
                }
                out.push_str(&style.key_sep);
                write_value(out, &v.get_item(key)?, style, level + 1)?;
            }
            newline(out, style, level);
            out.push('}');
        }
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: value is undefined (Python's json.dumps rejects Jinja's Undefined)",
            ))
        }
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: a {other} value is not JSON serializable"),
            ))
        }
    }
    Ok(())
}

fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in [-4, 16) and scientific (`1e-05`, `1.5e+16`) otherwise
/// (CPython `float_repr_style = 'short'`, `format_float_short` with mode 'r').
pub(crate) fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "-1.25e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = sign.to_owned();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let mut d = digits.clone();
            while d.len() < int_len {
                d.push('0');
            }
            let (int_part, frac) = d.split_at(int_len);
            out.push_str(int_part);
            out.push('.');
            out.push_str(if frac.is_empty() { "0" } else { frac });
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A calendar date and time of day (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Monday.
    pub weekday: u32,
    /// 1-based day of the year.
    pub yday: u32,
}

impl DateTime {
    /// The UTC date of `secs` seconds since 1970-01-01T00:00:00Z, by Howard Hinnant's
    /// `civil_from_days` algorithm ("chrono-Compatible Low-Level Date Algorithms").
    pub fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let yday = CUM[month as usize - 1] + day + u32::from(leap && month > 2);
        DateTime {
            year,
            month,
            day,
            hour: (tod / 3600) as u32,
            minute: (tod % 3600 / 60) as u32,
            second: (tod % 60) as u32,
            // 1970-01-01 was a Thursday (index 3).
            weekday: (days + 3).rem_euclid(7) as u32,
            yday,
        }
    }

    /// C `strftime` for the directives chat templates use (`%d %b %Y` in Llama 3's), plus
    /// glibc's `-` flag that drops zero padding (`%-d`). Unknown directives are kept as written.
    pub fn strftime(&self, format: &str) -> String {
        let mut out = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let no_pad = chars.peek() == Some(&'-');
            if no_pad {
                chars.next();
            }
            let num = |n: i64, width: usize| {
                if no_pad {
                    n.to_string()
                } else {
                    format!("{n:0width$}")
                }
            };
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            match chars.next() {
                Some('Y') => out.push_str(&self.year.to_string()),
                Some('y') => out.push_str(&num(self.year.rem_euclid(100), 2)),
                Some('m') => out.push_str(&num(self.month.into(), 2)),
                Some('d') => out.push_str(&num(self.day.into(), 2)),
                Some('e') => out.push_str(&format!("{:>2}", self.day)),
                Some('H') => out.push_str(&num(self.hour.into(), 2)),
                Some('I') => out.push_str(&num(hour12.into(), 2)),
                Some('M') => out.push_str(&num(self.minute.into(), 2)),
                Some('S') => out.push_str(&num(self.second.into(), 2)),
                Some('j') => out.push_str(&num(self.yday.into(), 3)),
                Some('p') => out.push_str(if self.hour < 12 { "AM" } else { "PM" }),
                Some('B') => out.push_str(MONTHS[self.month as usize - 1]),
                Some('b') | Some('h') => out.push_str(&MONTHS[self.month as usize - 1][..3]),
                Some('A') => out.push_str(WEEKDAYS[self.weekday as usize]),
                Some('a') => out.push_str(&WEEKDAYS[self.weekday as usize][..3]),
                Some('%') => out.push('%'),
                Some(other) => {
                    out.push('%');
                    if no_pad {
                        out.push('-');
                    }
                    out.push(other);
                }
                None => out.push('%'),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are Python 3.11's repr() of the same floats.
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (100.0, "100.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (0.30000000000000004, "0.30000000000000004"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn dumps_matches_python_separators_and_escapes() {
        let v =
            Value::from_serialize(serde_json::json!({"a": [1, 2.5, null, true], "b": "é\"\n<"}));
        // json.dumps({"a": [1, 2.5, None, True], "b": "é\"\n<"}, ensure_ascii=False)
        assert_eq!(
            dumps(&v, &JsonStyle::new(None)).unwrap(),
            r#"{"a": [1, 2.5, null, true], "b": "é\"\n<"}"#
        );
        // json.dumps(..., indent=2)
        assert_eq!(
            dumps(&v, &JsonStyle::new(Some("  ".into()))).unwrap(),
            "{\n  \"a\": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n  \"b\": \"é\\\"\\n<\"\n}"
        );
        let mut ascii = JsonStyle::new(None);
        ascii.ensure_ascii = true;
        // json.dumps("é😀") == '"\\u00e9\\ud83d\\ude00"'
        assert_eq!(
            dumps(&Value::from("é😀"), &ascii).unwrap(),
            r#""\u00e9\ud83d\ude00""#
        );
    }

    #[test]
    fn civil_dates() {
        // date -u -d @0, @951782400 (2000-02-29), @1704067199 (2023-12-31 23:59:59)
        let d = DateTime::from_unix(0);
        assert_eq!(
            (d.year, d.month, d.day, d.weekday, d.yday),
            (1970, 1, 1, 3, 1)
        );
        let d = DateTime::from_unix(951_782_400);
        assert_eq!(
            (d.year, d.month, d.day, d.weekday, d.yday),
            (2000, 2, 29, 1, 60)
        );
        let d = DateTime::from_unix(1_704_067_199);
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.minute, d.second),
            (2023, 12, 31, 23, 59, 59)
        );
        assert_eq!(d.yday, 365);
        // Python: datetime(2023,12,31,23,59,59).strftime("%d %b %Y %a %I%p %j %-m %%")
        assert_eq!(
            d.strftime("%d %b %Y %a %I%p %j %-m %%"),
            "31 Dec 2023 Sun 11PM 365 12 %"
        );
    }
}
