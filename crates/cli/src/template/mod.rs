//! Go templates as the docker CLI runs them (`--format`): Go's `text/template` (lexer, parser,
//! executor) over JSON values, with docker's functions and Go's printing of values.

mod ast;
mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod value;

pub use value::Value;

/// What a field missing from a map gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// `<no value>` (Go's default).
    NoValue,
    /// An error (`missingkey=error`).
    Error,
    /// As docker's typed structs: an error in objects that look like structs (capitalised
    /// keys), `<no value>` in maps (labels, options...); a field also matches a key spelled
    /// with other cases (`.ID` is `Id`, as Go's field names and the JSON names differ); numbers
    /// are `json.Number`s in errors.
    Typed,
    /// Docker's list contexts: an error naming the Go type of the context.
    Struct(&'static str),
}

/// Methods of the data (`{{.Label "key"}}` on docker's list contexts).
pub trait Methods {
    /// Whether the data has a method `name`.
    fn has(&self, name: &str) -> bool;
    /// Calls it.
    fn call(&self, name: &str, args: &[Value]) -> Result<Value, String>;
}

/// How to execute.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub missing: Missing,
    /// Docker's header functions (`upper`, `json`... leave the text as is).
    pub header: bool,
    pub method: Option<&'a dyn Methods>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            missing: Missing::Typed,
            header: false,
            method: None,
        }
    }
}

/// A template error; its text is Go's (`template: :1: function "x" not defined`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    text: String,
    tree: parse::Tree,
}

impl Template {
    /// Parses `text` as Go's `template.New("").Funcs(docker's).Parse(text)`.
    pub fn parse(text: &str) -> Result<Template, Error> {
        Template::parse_named("", text)
    }

    /// Parses `text` as a template named `name` (the name is in its errors).
    pub fn parse_named(name: &str, text: &str) -> Result<Template, Error> {
        let tree = parse::parse(name, text, &funcs::exists).map_err(Error)?;
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            tree,
        })
    }

    /// Executes on `data`.
    pub fn execute(&self, data: &Value, opts: &Options<'_>) -> Result<String, Error> {
        exec::execute(&self.tree, &self.name, &self.text, data, opts).map_err(Error)
    }

    /// Executes and returns what was written, up to an error if there is one.
    pub fn execute_partial(&self, data: &Value, opts: &Options<'_>) -> String {
        exec::execute_partial(&self.tree, &self.name, &self.text, data, opts)
    }
}

#[cfg(test)]
mod tests;
