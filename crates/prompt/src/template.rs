//! Chat messages and the checkpoint's own Jinja chat template, rendered like transformers'
//! `apply_chat_template(..., tokenize=False)`.

use std::path::Path;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde_json::json;

use crate::config::{parse_chat_template_field, read_json_opt, read_text_opt, SpecialTokens};
use crate::error::{PromptError, Result};
use crate::pyfmt::{dumps, DateTime, JsonStyle};

/// One part of a message's content, in HuggingFace's chat format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPart {
    /// `{"type": "text", "text": ...}`.
    Text(String),
    /// `{"type": "image"}`: where an image goes; the template writes the model's placeholder.
    Image,
}

/// A message's content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// `"content": "..."`.
    Text(String),
    /// `"content": [{"type": ...}, ...]`.
    Parts(Vec<ContentPart>),
}

/// One chat message: a role (`system`, `user`, `assistant`) and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `"role"`.
    pub role: String,
    /// `"content"`.
    pub content: Content,
}

impl Message {
    /// A message whose content is a plain string.
    pub fn text(role: &str, text: &str) -> Message {
        Message {
            role: role.to_owned(),
            content: Content::Text(text.to_owned()),
        }
    }

    /// A message whose content is a list of parts.
    pub fn parts(role: &str, parts: Vec<ContentPart>) -> Message {
        Message {
            role: role.to_owned(),
            content: Content::Parts(parts),
        }
    }

    /// Number of `{"type": "image"}` parts.
    pub fn image_count(&self) -> usize {
        match &self.content {
            Content::Text(_) => 0,
            Content::Parts(p) => p.iter().filter(|p| **p == ContentPart::Image).count(),
        }
    }

    /// The HuggingFace JSON form: `{"role": .., "content": ..}`.
    pub fn to_json(&self) -> serde_json::Value {
        let content = match &self.content {
            Content::Text(t) => json!(t),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text(t) => json!({"type": "text", "text": t}),
                    ContentPart::Image => json!({"type": "image"}),
                })
                .collect(),
        };
        json!({"role": self.role, "content": content})
    }

    /// Parses the HuggingFace JSON form. Unknown part types are an error so that a part the
    /// template would render differently (`{"type": "video"}`) is not silently dropped.
    pub fn from_json(v: &serde_json::Value) -> std::result::Result<Message, String> {
        let role = v
            .get("role")
            .and_then(serde_json::Value::as_str)
            .ok_or("message without a string \"role\"")?;
        let content = match v.get("content") {
            Some(serde_json::Value::String(s)) => Content::Text(s.clone()),
            Some(serde_json::Value::Array(parts)) => Content::Parts(
                parts
                    .iter()
                    .map(
                        |p| match p.get("type").and_then(serde_json::Value::as_str) {
                            Some("image") => Ok(ContentPart::Image),
                            Some("text") => p
                                .get("text")
                                .and_then(serde_json::Value::as_str)
                                .map(|t| ContentPart::Text(t.to_owned()))
                                .ok_or_else(|| "text part without a string \"text\"".to_owned()),
                            other => Err(format!("unsupported content part type {other:?}")),
                        },
                    )
                    .collect::<std::result::Result<_, _>>()?,
            ),
            _ => return Err("message \"content\" must be a string or a list of parts".into()),
        };
        Ok(Message {
            role: role.to_owned(),
            content,
        })
    }
}

/// Marks errors raised by the template's own `raise_exception(...)` calls.
const RAISED: &str = "raise_exception: ";

/// A compiled chat template with the special tokens it is rendered with.
///
/// The Jinja environment mirrors transformers' `_compile_jinja_template` (4.57):
/// `trim_blocks` and `lstrip_blocks` on, a single trailing newline of the source dropped (Jinja's
/// default), loop controls (`break`/`continue`), `raise_exception(msg)` as an error,
/// `strftime_now(fmt)`, and `tojson` as Python's `json.dumps(x, ensure_ascii=False, indent=..,
/// separators=.., sort_keys=..)`. Python methods on strings and dicts (`.strip()`, `.upper()`,
/// `.items()` …) come from minijinja-contrib's `pycompat`; `None`/`True`/`False` print as
/// Python prints them. `{% generation %}` blocks (used by transformers only to compute an
/// assistant-token mask) render their body unchanged.
///
/// Messages given as [`Message`]s keep Python's dict order (`role`, `content`; `type`, `text`)
/// so `message | tojson` and `.items()` match. Known differences from Jinja2: dicts that come
/// from JSON ([`ChatTemplate::render_json`], template literals) iterate and serialise in sorted
/// key order (the workspace's JSON parser does not keep insertion order), and a whole list
/// printed with `{{ }}` uses minijinja's notation.
#[derive(Debug)]
pub struct ChatTemplate {
    source_name: String,
    source: String,
    special: SpecialTokens,
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Compiles `source`; `source_name` (e.g. `"model/tokenizer_config.json"`) names it in errors.
    pub fn new(source_name: &str, source: &str, special: SpecialTokens) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(|out, state, value| {
            match value.kind() {
                ValueKind::None => out.write_str("None")?,
                ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" })?,
                _ => minijinja::escape_formatter(out, state, value)?,
            }
            Ok(())
        });
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<Value, Error> {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{RAISED}{message}"),
                ))
            },
        );
        env.add_function("strftime_now", |format: String| -> String {
            // Python's datetime.now() is local time; this machine's templates get UTC.
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            DateTime::from_unix(secs).strftime(&format)
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat_template", generation_tags_as_noop(source))
            .map_err(|e| PromptError::TemplateSyntax {
                source_name: source_name.to_owned(),
                message: describe(&e),
            })?;
        Ok(ChatTemplate {
            source_name: source_name.to_owned(),
            source: source.to_owned(),
            special,
            env,
        })
    }

    /// Finds and compiles the chat template of a model folder, looking where transformers
    /// does, first match wins:
    /// 1. `additional_chat_templates/<name>.jinja` when a `name` other than `"default"` is asked;
    /// 2. `chat_template.jinja` (written by transformers ≥ 4.52 and 5.x);
    /// 3. `chat_template.json` (`{"chat_template": ...}`, the processor's template);
    /// 4. `tokenizer_config.json`'s `"chat_template"` (a string, or a list of named templates
    ///    from which `name`, default `"default"`, is taken).
    pub fn load(dir: &Path, special: SpecialTokens, name: Option<&str>) -> Result<ChatTemplate> {
        let wanted = name.unwrap_or("default");
        if wanted != "default" {
            let p = dir
                .join("additional_chat_templates")
                .join(format!("{wanted}.jinja"));
            if let Some(src) = read_text_opt(&p)? {
                return ChatTemplate::new(&p.display().to_string(), &src, special);
            }
        }
        let mut candidates: Vec<(String, Vec<(String, String)>)> = Vec::new();
        let jinja = dir.join("chat_template.jinja");
        if let Some(src) = read_text_opt(&jinja)? {
            candidates.push((jinja.display().to_string(), vec![("default".into(), src)]));
        }
        let json_path = dir.join("chat_template.json");
        if let Some(v) = read_json_opt(&json_path)? {
            let field = v.get("chat_template").unwrap_or(&serde_json::Value::Null);
            let list = parse_chat_template_field(field, &json_path)?;
            candidates.push((json_path.display().to_string(), list));
        }
        let tc_path = dir.join("tokenizer_config.json");
        if let Some(v) = read_json_opt(&tc_path)? {
            if let Some(field) = v.get("chat_template") {
                let list = parse_chat_template_field(field, &tc_path)?;
                candidates.push((tc_path.display().to_string(), list));
            }
        }
        let Some((source_name, list)) = candidates.into_iter().find(|(_, l)| !l.is_empty()) else {
            return Err(PromptError::NoChatTemplate {
                dir: dir.to_path_buf(),
            });
        };
        match list.iter().find(|(n, _)| n == wanted) {
            Some((n, src)) => {
                let label = if list.len() > 1 {
                    format!("{source_name}#{n}")
                } else {
                    source_name
                };
                ChatTemplate::new(&label, src, special)
            }
            None => Err(PromptError::NoSuchTemplate {
                source_name,
                name: wanted.to_owned(),
                available: list
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Where the template came from (file, and `#name` for a named template).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The template source as written in the file.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens passed to the template.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The prompt text for `messages`; `add_generation_prompt` appends the template's opening
    /// of the assistant turn. Same text as transformers'
    /// `apply_chat_template(messages, add_generation_prompt=.., tokenize=False)`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let values: Vec<Value> = messages.iter().map(message_value).collect();
        self.render_value(
            Value::from(values),
            add_generation_prompt,
            &serde_json::Map::new(),
        )
    }

    /// Renders messages given in HuggingFace's JSON form, with extra template variables
    /// (transformers' `**kwargs` of `apply_chat_template`, e.g. `{"enable_thinking": false}`).
    /// Template variables, as transformers passes them: `messages`, `tools` (None),
    /// `documents` (None), `add_generation_prompt`, the extra variables, then every set special
    /// token (`bos_token`, `eos_token`, …, `additional_special_tokens`), which win over extras
    /// of the same name.
    pub fn render_json(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        self.render_value(
            Value::from_serialize(messages),
            add_generation_prompt,
            extra,
        )
    }

    fn render_value(
        &self,
        messages: Value,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let mut ctx: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
        ctx.insert("messages".into(), messages);
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        for (k, v) in extra {
            ctx.insert(k.clone(), Value::from_serialize(v));
        }
        for (k, v) in &self.special.named {
            ctx.insert(k.clone(), Value::from(v.as_str()));
        }
        if !self.special.additional.is_empty() {
            ctx.insert(
                "additional_special_tokens".into(),
                Value::from_serialize(&self.special.additional),
            );
        }
        let tmpl = self
            .env
            .get_template("chat_template")
            .map_err(|e| self.render_error(&e))?;
        tmpl.render(Value::from(ctx))
            .map_err(|e| self.render_error(&e))
    }

    fn render_error(&self, e: &Error) -> PromptError {
        // The raise may sit under macro or include frames: walk the causes.
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(mj) = err.downcast_ref::<Error>() {
                if let Some(msg) = mj.detail().and_then(|d| d.strip_prefix(RAISED)) {
                    return PromptError::TemplateRaised {
                        source_name: self.source_name.clone(),
                        message: msg.to_owned(),
                    };
                }
            }
            cur = err.source();
        }
        PromptError::TemplateRender {
            source_name: self.source_name.clone(),
            message: describe(e),
        }
    }
}

/// A map that iterates in insertion order, like a Python dict, without minijinja's
/// `preserve_order` feature (see the workspace Cargo.toml for why that feature is off).
#[derive(Debug)]
struct OrderedMap(Vec<(Value, Value)>);

impl Object for OrderedMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }
}

fn ordered(pairs: Vec<(&str, Value)>) -> Value {
    Value::from_object(OrderedMap(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    ))
}

/// A message as the dict transformers' users write: `{"role", "content"}`, parts
/// `{"type", "text"}`, in that order.
fn message_value(m: &Message) -> Value {
    let content = match &m.content {
        Content::Text(t) => Value::from(t.as_str()),
        Content::Parts(parts) => Value::from(
            parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text(t) => ordered(vec![
                        ("type", Value::from("text")),
                        ("text", Value::from(t.as_str())),
                    ]),
                    ContentPart::Image => ordered(vec![("type", Value::from("image"))]),
                })
                .collect::<Vec<_>>(),
        ),
    };
    ordered(vec![
        ("role", Value::from(m.role.as_str())),
        ("content", content),
    ])
}

/// A minijinja error with its line, and its causes.
fn describe(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        msg.push_str(": ");
        msg.push_str(&err.to_string());
        cur = err.source();
    }
    msg
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None,
/// sort_keys=False)`, without Jinja's HTML escaping.
fn tojson(
    value: Value,
    indent: Option<Value>,
    kwargs: Kwargs,
) -> std::result::Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match (v.as_i64(), v.as_str()) {
            (Some(n), _) => Some(" ".repeat(n.max(0) as usize)),
            (None, Some(s)) => Some(s.to_owned()),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an int, a string or None",
                ))
            }
        },
    };
    let mut style = JsonStyle::new(indent);
    if let Some(v) = kwargs.get::<Option<bool>>("ensure_ascii")? {
        style.ensure_ascii = v;
    }
    if let Some(v) = kwargs.get::<Option<bool>>("sort_keys")? {
        style.sort_keys = v;
    }
    if let Some(seps) = kwargs.get::<Option<Vec<String>>>("separators")? {
        match seps.as_slice() {
            [item, key] => {
                style.item_sep = item.clone();
                style.key_sep = key.clone();
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: separators must be a pair (item_separator, key_separator)",
                ))
            }
        }
    }
    kwargs.assert_all_used()?;
    Ok(Value::from_safe_string(dumps(&value, &style)?))
}

/// Rewrites `{% generation %}` / `{% endgeneration %}` (transformers' AssistantTracker
/// extension) as `{% if true %}` / `{% endif %}`, keeping the `-`/`+` whitespace markers so
/// the text around them is trimmed exactly as before.
fn generation_tags_as_noop(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        match rewrite_generation_tag(tag) {
            Some((replacement, consumed)) => {
                out.push_str(&replacement);
                rest = &tag[consumed..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` starts with a `generation`/`endgeneration` block tag, its replacement and length.
fn rewrite_generation_tag(tag: &str) -> Option<(String, usize)> {
    let body_start = 2;
    let inner = &tag[body_start..];
    let (open_marker, inner) = match inner.chars().next() {
        Some(c @ ('-' | '+')) => (c.to_string(), &inner[1..]),
        _ => (String::new(), inner),
    };
    let trimmed = inner.trim_start();
    let (keyword, replacement) = if trimmed.starts_with("endgeneration") {
        ("endgeneration", "endif")
    } else if trimmed.starts_with("generation") {
        ("generation", "if true")
    } else {
        return None;
    };
    let after_kw = &trimmed[keyword.len()..];
    let after_ws = after_kw.trim_start();
    let (close_marker, after_marker) = match after_ws.chars().next() {
        Some(c @ ('-' | '+')) if after_ws[1..].starts_with("%}") => (c.to_string(), &after_ws[1..]),
        _ => (String::new(), after_ws),
    };
    if !after_marker.starts_with("%}") {
        return None;
    }
    let consumed = tag.len() - after_marker.len() + 2;
    Some((
        format!("{{%{open_marker} {replacement} {close_marker}%}}"),
        consumed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn special() -> SpecialTokens {
        let mut s = SpecialTokens::default();
        s.named.insert("bos_token".into(), "<s>".into());
        s
    }

    #[test]
    fn generation_tags_become_noops() {
        assert_eq!(
            generation_tags_as_noop("a{% generation %}b{%- endgeneration -%} c{% if x %}"),
            "a{% if true %}b{%- endif -%} c{% if x %}"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_like_transformers() {
        // Jinja2 with trim_blocks=True, lstrip_blocks=True renders "<s>A\nB\n".
        let src = "{{ bos_token }}\n  {% for m in messages %}\n{{ m.content }}\n  {% endfor %}\n";
        let t = ChatTemplate::new("t", src, special()).unwrap();
        let out = t
            .render(
                &[Message::text("user", "A"), Message::text("user", "B")],
                false,
            )
            .unwrap();
        assert_eq!(out, "<s>\nA\nB\n");
    }

    #[test]
    fn python_spellings_and_helpers() {
        let src = "{{ none_value }} {{ add_generation_prompt }} {{ messages[0].content.upper() }} \
                   {{ messages[0].content.startswith('h') }} {{ {'a': [1.5, 'é'], 'b': 1} | tojson }} \
                   {{ messages | length }}{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}x{% endfor %}";
        let t = ChatTemplate::new("t", src, special()).unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert("none_value".into(), serde_json::Value::Null);
        let msgs = json!([{"role": "user", "content": "hi"}, {"role": "user", "content": "yo"}]);
        let out = t.render_json(&msgs, true, &extra).unwrap();
        assert_eq!(out, "None True HI True {\"a\": [1.5, \"é\"], \"b\": 1} 2x");
    }

    #[test]
    fn messages_keep_python_dict_order() {
        // Jinja2 + transformers' tojson: {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}
        let t = ChatTemplate::new(
            "t",
            "{{ messages[0] | tojson }}|{% for k, v in messages[0].items() %}{{ k }},{% endfor %}",
            special(),
        )
        .unwrap();
        let m = Message::parts(
            "user",
            vec![ContentPart::Image, ContentPart::Text("q".into())],
        );
        assert_eq!(
            t.render(&[m], false).unwrap(),
            r#"{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}|role,content,"#
        );
    }

    #[test]
    fn raise_exception_is_a_clear_error() {
        let src = "{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}";
        let t = ChatTemplate::new("my/tokenizer_config.json", src, special()).unwrap();
        let err = t.render(&[Message::text("user", "x")], false).unwrap_err();
        assert!(matches!(err, PromptError::TemplateRaised { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "chat template my/tokenizer_config.json raised: first message must be system"
        );
    }

    #[test]
    fn syntax_error_names_the_template() {
        let err = ChatTemplate::new("dir/chat_template.jinja", "{% for %}", special()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("chat template dir/chat_template.jinja: syntax error"),
            "{text}"
        );
    }
}
