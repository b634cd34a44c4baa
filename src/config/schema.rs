//! Reading the file against the shape of its sections: every unknown key, every value of the
//! wrong type and every missing required key found in one pass, with its key path (serde alone
//! stops at the first). What could be read goes on to [`super::Config`]'s rules.

use super::RawConfig;
use crate::rules::{ConfigError, Problem};
use std::collections::HashSet;

/// The file read against the shape of [`RawConfig`], every unknown key and every value of the
/// wrong type found in one pass (serde alone stops at the first).
pub(super) struct Schema {
    /// What could be read: the keys in error taken out, `[[accounts]]` and `[[routes]]` entries in
    /// error left out.
    pub(super) raw: RawConfig,
    pub(super) problems: Vec<Problem>,
    /// Ids of the accounts left out: they exist, so a route to one is not "no such account".
    pub(super) invalid_ids: HashSet<String>,
}

/// How many problems one file may show before reading stops (each costs one more parse).
const SCHEMA_PROBLEMS_MAX: usize = 100;

impl Schema {
    /// Reads `text` over and over, each time taking out (or standing in for) the key serde
    /// stopped at, until it reads.
    pub(super) fn read(text: &str) -> Result<Schema, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let at = e.span().map(|s| format!(" (line {})", line_of(text, s.start))).unwrap_or_default();
            ConfigError(vec![Problem { path: "(file)".into(), message: format!("{}{at}", e.message()) }])
        })?;
        let written = table.clone();
        let mut problems: Vec<Problem> = Vec::new();
        // Keys taken out because their value was wrong: a "missing field" for one is not news.
        let mut taken_out: HashSet<String> = HashSet::new();
        // `[[accounts]]` / `[[routes]]` entries with a problem, left out at the end.
        let mut broken: HashSet<(String, usize)> = HashSet::new();
        loop {
            let error =
                match serde_path_to_error::deserialize::<_, RawConfig>(toml::Value::Table(table.clone())) {
                    Ok(mut raw) => {
                        let invalid_ids = Self::leave_out_broken(&mut raw, &written, &broken);
                        return Ok(Schema { raw, problems, invalid_ids });
                    }
                    Err(e) => e,
                };
            let segments: Vec<serde_path_to_error::Segment> = error.path().iter().cloned().collect();
            let message = error.inner().message().to_string();
            let path = path_of(&segments);
            if let (
                Some(serde_path_to_error::Segment::Map { key: list }),
                Some(serde_path_to_error::Segment::Seq { index }),
            ) = (segments.first(), segments.get(1))
            {
                broken.insert((list.clone(), *index));
            }
            let missing = message.strip_prefix("missing field `").and_then(|m| m.split('`').next());
            let progressed = match missing {
                Some(key) => {
                    let key_path = join_key(&path, key);
                    if !taken_out.contains(&key_path) {
                        problems.push(Problem { path: path.clone(), message: message.clone() });
                    }
                    stand_in(&mut table, &segments, key)
                }
                None => {
                    problems.push(Problem { path: path.clone(), message: message.clone() });
                    taken_out.insert(path.clone());
                    take_out(&mut table, &segments)
                }
            };
            if !progressed || problems.len() >= SCHEMA_PROBLEMS_MAX {
                return Err(ConfigError(problems));
            }
        }
    }

    /// Leaves the broken `[[accounts]]` and `[[routes]]` entries out of `raw`; returns the ids of
    /// the accounts left out, as `written` (the file as parsed, before any stand-in) has them.
    fn leave_out_broken(
        raw: &mut RawConfig,
        table: &toml::Table,
        broken: &HashSet<(String, usize)>,
    ) -> HashSet<String> {
        let is_broken = |list: &str, i: usize| broken.contains(&(list.to_string(), i));
        let mut index = 0;
        raw.accounts.retain(|_| {
            index += 1;
            !is_broken("accounts", index - 1)
        });
        let mut index = 0;
        raw.routes.retain(|_| {
            index += 1;
            !is_broken("routes", index - 1)
        });
        let written = table.get("accounts").and_then(|a| a.as_array()).cloned().unwrap_or_default();
        written
            .iter()
            .enumerate()
            .filter(|(i, _)| is_broken("accounts", *i))
            .filter_map(|(_, entry)| entry.get("id").and_then(|id| id.as_str()).map(str::to_string))
            .collect()
    }
}

/// `accounts[0].asset_scale` from serde's path; `(top level)` for the file itself.
fn path_of(segments: &[serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut path = String::new();
    for segment in segments {
        match segment {
            Segment::Seq { index } => path.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Segment::Unknown => path.push_str(".?"),
        }
    }
    if path.is_empty() {
        "(top level)".into()
    } else {
        path
    }
}

fn join_key(path: &str, key: &str) -> String {
    match path {
        "(top level)" => key.to_string(),
        _ => format!("{path}.{key}"),
    }
}

/// The value at `segments` in `table`, if there is one.
fn value_at<'a>(
    table: &'a mut toml::Table,
    segments: &[serde_path_to_error::Segment],
) -> Option<&'a mut toml::Value> {
    use serde_path_to_error::Segment;
    let (Segment::Map { key }, rest) = segments.split_first()? else { return None };
    let mut value = table.get_mut(key)?;
    for segment in rest {
        value = match segment {
            Segment::Map { key } => value.as_table_mut()?.get_mut(key)?,
            Segment::Seq { index } => value.as_array_mut()?.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Takes out the key (or empties the list entry) at `segments`; false if there is none.
fn take_out(table: &mut toml::Table, segments: &[serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    match segments.split_last() {
        Some((Segment::Map { key }, [])) => table.remove(key).is_some(),
        Some((Segment::Map { key }, parent)) => {
            value_at(table, parent).and_then(|v| v.as_table_mut()).is_some_and(|t| t.remove(key).is_some())
        }
        // A list entry of the wrong type: an empty table stands in, so the indices stay put (the
        // entry is left out at the end).
        Some((Segment::Seq { .. }, _)) => match value_at(table, segments) {
            Some(value) if !value.is_table() => {
                *value = toml::Value::Table(toml::Table::new());
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Puts a stand-in for the required `key` missing at `segments`, so that reading goes on past
/// it: the first of a few values of the common types that serde takes there.
fn stand_in(table: &mut toml::Table, segments: &[serde_path_to_error::Segment], key: &str) -> bool {
    let candidates = [toml::Value::Integer(0), toml::Value::String("child".into())];
    for candidate in candidates {
        let mut trial = table.clone();
        let parent = match segments.is_empty() {
            true => Some(&mut trial),
            false => value_at(&mut trial, segments).and_then(|v| v.as_table_mut()),
        };
        let Some(parent) = parent else { return false };
        parent.insert(key.to_string(), candidate);
        let still_there =
            match serde_path_to_error::deserialize::<_, RawConfig>(toml::Value::Table(trial.clone())) {
                Ok(_) => false,
                Err(e) => {
                    let at: Vec<_> = e.path().iter().cloned().collect();
                    path_of(&at) == join_key(&path_of(segments), key)
                        || (path_of(&at) == path_of(segments)
                            && e.inner().message().contains(&format!("`{key}`")))
                }
            };
        if !still_there {
            *table = trial;
            return true;
        }
    }
    false
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}
