//! A plan catalog: plans bundled with the hooks, chosen by the deployment's application and
//! deployment group, so one set of hooks serves many services.
//!
//! ```json
//! { "plans": [
//!     { "application": "checkout", "deployment_group": "checkout-*", "plan_file": "plans/checkout.json" },
//!     { "application": "cart-*", "plan": { "checks": [] } } ],
//!   "default": { "plan_file": "plans/smoke.json" } }
//! ```
//!
//! An entry names a CodeDeploy deployment's `application` and `deployment_group`, or an ECS-native
//! deployment's `cluster` and `service` (`{ "cluster": "shop", "service": "checkout", "plan_file": ... }`),
//! not both. Entries are tried in order and the first match wins. A name matches exactly or by glob (`*`,
//! `?`, `[abc]`, `{a,b}`); a name left out matches any, and an entry that names nothing matches
//! every deployment of both kinds. Every plan in the catalog is loaded and
//! validated when the hook starts. An entry whose plan is invalid fails only the deployments it
//! matches, with its own error.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use serde::Deserialize;
use serde_json::Value;

use super::select::{Loaded, LoadedPlan};
use super::{MemoryLimit, PlanSource};

/// Path of the catalog file, relative paths resolved against the function's package directory.
pub const CATALOG_FILE_ENV: &str = "GREENLIGHT_PLAN_CATALOG_FILE";

/// A loaded catalog.
#[derive(Debug)]
pub struct Catalog {
    entries: Vec<Entry>,
    default: Option<Loaded>,
}

#[derive(Debug)]
struct Entry {
    /// Where it is in the catalog, as a JSON pointer: `/plans/2`.
    pointer: String,
    keys: Keys,
    plan: Loaded,
}

/// What an entry matches.
#[derive(Debug)]
enum Keys {
    /// Every deployment: the entry names nothing.
    Any,
    /// CodeDeploy deployments: (application, deployment group).
    Group(Pattern, Pattern),
    /// ECS-native deployments: (cluster, service).
    Service(Pattern, Pattern),
}

/// The names a deployment is matched by.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A CodeDeploy deployment's application and deployment group.
    Group(&'a str, &'a str),
    /// An ECS-native deployment's cluster and service.
    Service(&'a str, &'a str),
}

#[derive(Debug)]
struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    fn new(text: Option<String>, pointer: &str) -> Result<Self, String> {
        let text = text.unwrap_or_else(|| "*".to_owned());
        let glob = Glob::new(&text).map_err(|err| format!("{pointer}: {:?} is not a glob: {}", text, err.kind()))?;
        Ok(Self { matcher: glob.compile_matcher(), text })
    }
}

/// Which catalog plan a deployment gets.
#[derive(Debug)]
pub enum Choice<'a> {
    /// The first entry that matches: where it is and what it matched, and its plan.
    Entry(String, &'a Loaded),
    /// No entry matched; the catalog's default.
    Default(&'a Loaded),
    /// No entry matched and there is no default.
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogDoc {
    plans: Vec<EntryDoc>,
    #[serde(default)]
    default: Option<PlanRefDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryDoc {
    application: Option<String>,
    deployment_group: Option<String>,
    cluster: Option<String>,
    service: Option<String>,
    plan: Option<Value>,
    plan_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanRefDoc {
    plan: Option<Value>,
    plan_file: Option<PathBuf>,
}

impl Catalog {
    /// Reads the catalog at `path` and loads every plan in it. A catalog that cannot be read or
    /// has the wrong shape is an error; a plan in it that is invalid is that entry's error.
    pub fn load(path: &Path, memory: Option<MemoryLimit>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read the plan catalog {}: {err}", path.display()))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("")), memory)
            .map_err(|err| format!("plan catalog {}: {err}", path.display()))
    }

    /// A catalog from its JSON; relative plan files resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path, memory: Option<MemoryLimit>) -> Result<Self, String> {
        let doc: CatalogDoc = serde_json::from_str(text).map_err(|err| format!("not a plan catalog: {err}"))?;
        let load = |pointer: &str, plan: Option<Value>, plan_file: Option<PathBuf>| -> Result<Loaded, String> {
            let source = match (plan, plan_file) {
                (Some(plan), None) => PlanSource::Inline(plan.to_string()),
                (None, Some(file)) => PlanSource::File(base_dir.join(file)),
                _ => return Err(format!("{pointer}: needs exactly one of \"plan\" or \"plan_file\"")),
            };
            Ok(super::load(&source, base_dir)
                .and_then(|plan| plan.fit_memory(memory))
                .map_err(|err| err.to_string())
                .and_then(LoadedPlan::new)
                .map(std::sync::Arc::new)
                .map_err(|err| format!("catalog entry {pointer}: {err}")))
        };
        let mut entries = Vec::with_capacity(doc.plans.len());
        for (index, entry) in doc.plans.into_iter().enumerate() {
            let pointer = format!("/plans/{index}");
            let pattern = |text, name: &str| Pattern::new(text, &format!("{pointer}/{name}"));
            let codedeploy = entry.application.is_some() || entry.deployment_group.is_some();
            let ecs = entry.cluster.is_some() || entry.service.is_some();
            let keys = match (codedeploy, ecs) {
                (false, false) => Keys::Any,
                (true, false) => Keys::Group(
                    pattern(entry.application, "application")?,
                    pattern(entry.deployment_group, "deployment_group")?,
                ),
                (false, true) => Keys::Service(pattern(entry.cluster, "cluster")?, pattern(entry.service, "service")?),
                (true, true) => {
                    return Err(format!(
                        "{pointer}: an entry names a CodeDeploy application and deployment_group, or an ECS cluster and service, not both"
                    ));
                }
            };
            entries.push(Entry { keys, plan: load(&pointer, entry.plan, entry.plan_file)?, pointer });
        }
        let default = doc.default.map(|default| load("/default", default.plan, default.plan_file)).transpose()?;
        Ok(Self { entries, default })
    }

    /// The plan for a deployment of `application`'s `deployment_group`.
    pub fn choose(&self, application: &str, deployment_group: &str) -> Choice<'_> {
        self.choose_by(Key::Group(application, deployment_group))
    }

    /// The plan for a deployment the names in `key` describe.
    pub fn choose_by(&self, key: Key<'_>) -> Choice<'_> {
        let found = self.entries.iter().find(|entry| match (&entry.keys, key) {
            (Keys::Any, _) => true,
            (Keys::Group(application, group), Key::Group(a, g)) => {
                application.matcher.is_match(a) && group.matcher.is_match(g)
            }
            (Keys::Service(cluster, service), Key::Service(c, s)) => {
                cluster.matcher.is_match(c) && service.matcher.is_match(s)
            }
            _ => false,
        });
        match (found, &self.default) {
            (Some(entry), _) => Choice::Entry(
                match &entry.keys {
                    Keys::Any => format!("catalog entry {} (any deployment)", entry.pointer),
                    Keys::Group(application, group) => format!(
                        "catalog entry {} (application {}, deployment group {})",
                        entry.pointer, application.text, group.text
                    ),
                    Keys::Service(cluster, service) => {
                        format!("catalog entry {} (cluster {}, service {})", entry.pointer, cluster.text, service.text)
                    }
                },
                &entry.plan,
            ),
            (None, Some(default)) => Choice::Default(default),
            (None, None) => Choice::None,
        }
    }

    /// Every entry's plan error, for the log at start-up.
    pub fn errors(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .map(|e| &e.plan)
            .chain(&self.default)
            .filter_map(|plan| plan.as_ref().err())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"{"checks":[{"name":"NAME","http":{"url":"http://127.0.0.1:9/"}}]}"#;

    fn plan(name: &str) -> String {
        PLAN.replace("NAME", name)
    }

    fn chosen(catalog: &Catalog, application: &str, group: &str) -> Option<String> {
        let loaded = match catalog.choose(application, group) {
            Choice::Entry(_, loaded) | Choice::Default(loaded) => loaded,
            Choice::None => return None,
        };
        Some(loaded.as_ref().expect("valid plan").plan.checks[0].name.clone())
    }

    #[test]
    fn the_first_matching_entry_wins_then_the_default() {
        let text = format!(
            r#"{{"plans":[
                {{"application":"checkout","deployment_group":"checkout-prod","plan":{}}},
                {{"application":"checkout*","plan":{}}},
                {{"deployment_group":"*-canary","plan":{}}}],
              "default":{{"plan":{}}}}}"#,
            plan("exact"),
            plan("glob"),
            plan("any-app"),
            plan("default")
        );
        let catalog = Catalog::parse(&text, Path::new("."), None).unwrap();
        assert_eq!(chosen(&catalog, "checkout", "checkout-prod").as_deref(), Some("exact"));
        assert_eq!(chosen(&catalog, "checkout", "checkout-canary").as_deref(), Some("glob"));
        assert_eq!(chosen(&catalog, "checkout-v2", "x").as_deref(), Some("glob"));
        assert_eq!(chosen(&catalog, "cart", "cart-canary").as_deref(), Some("any-app"));
        assert_eq!(chosen(&catalog, "cart", "cart-prod").as_deref(), Some("default"));
        match catalog.choose("checkout", "checkout-prod") {
            Choice::Entry(which, _) => {
                assert_eq!(which, "catalog entry /plans/0 (application checkout, deployment group checkout-prod)")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ecs_entries_match_ecs_native_deployments_by_cluster_and_service_only() {
        let text = format!(
            r#"{{"plans":[
                {{"cluster":"shop","service":"checkout","plan":{}}},
                {{"application":"shop","deployment_group":"checkout","plan":{}}},
                {{"plan":{}}}]}}"#,
            plan("ecs"),
            plan("codedeploy"),
            plan("any")
        );
        let catalog = Catalog::parse(&text, Path::new("."), None).unwrap();
        let name = |key| match catalog.choose_by(key) {
            Choice::Entry(which, loaded) => (which, loaded.as_ref().unwrap().plan.checks[0].name.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(Key::Service("shop", "checkout")),
            ("catalog entry /plans/0 (cluster shop, service checkout)".to_owned(), "ecs".to_owned())
        );
        assert_eq!(name(Key::Group("shop", "checkout")).1, "codedeploy", "a cluster is not an application");
        assert_eq!(name(Key::Service("shop", "cart")).1, "any");
        let mixed = format!(r#"{{"plans":[{{"application":"a","service":"s","plan":{}}}]}}"#, plan("a"));
        let err = Catalog::parse(&mixed, Path::new("."), None).unwrap_err();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn without_a_default_nothing_matched_is_no_plan() {
        let text = format!(r#"{{"plans":[{{"application":"checkout","plan":{}}}]}}"#, plan("a"));
        let catalog = Catalog::parse(&text, Path::new("."), None).unwrap();
        assert!(matches!(catalog.choose("cart", "cart-prod"), Choice::None));
    }

    #[test]
    fn an_invalid_plan_fails_only_its_entry() {
        let text = format!(
            r#"{{"plans":[{{"application":"broken","plan":{{"checks":[{{"name":"x","http":{{"url":"ftp://x"}}}}]}}}},
                          {{"plan":{}}}]}}"#,
            plan("fine")
        );
        let catalog = Catalog::parse(&text, Path::new("."), None).unwrap();
        let Choice::Entry(_, broken) = catalog.choose("broken", "g") else { panic!("entry") };
        let err = broken.as_ref().unwrap_err();
        assert!(err.starts_with("catalog entry /plans/0: plan is invalid: at /checks/0/http/url"), "{err}");
        assert_eq!(chosen(&catalog, "other", "g").as_deref(), Some("fine"));
        assert_eq!(catalog.errors().count(), 1);
    }

    #[test]
    fn a_malformed_catalog_says_where() {
        let both = format!(r#"{{"plans":[{{"plan":{},"plan_file":"p.json"}}]}}"#, plan("a"));
        assert_eq!(
            Catalog::parse(&both, Path::new("."), None).unwrap_err(),
            "/plans/0: needs exactly one of \"plan\" or \"plan_file\""
        );
        let glob = format!(r#"{{"plans":[{{"application":"[a","plan":{}}}]}}"#, plan("a"));
        let err = Catalog::parse(&glob, Path::new("."), None).unwrap_err();
        assert!(err.starts_with("/plans/0/application: \"[a\" is not a glob"), "{err}");
        let unknown = Catalog::parse(r#"{"plans":[],"defualt":{}}"#, Path::new("."), None).unwrap_err();
        assert!(unknown.starts_with("not a plan catalog: unknown field `defualt`"), "{unknown}");
        let missing = Catalog::load(Path::new("/nonexistent/catalog.json"), None).unwrap_err();
        assert!(missing.starts_with("cannot read the plan catalog /nonexistent/catalog.json"), "{missing}");
    }
}
