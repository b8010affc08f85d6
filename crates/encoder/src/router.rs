//! sentence-transformers' `Router` (inference-free / asymmetric models): its saved layout
//! (`router_config.json`: module types, the modules of each route, the default route and the
//! route mappings; one subfolder per module) and its route resolution, exactly as
//! `sentence_transformers.base.modules.router.Router` resolves a task for text inputs.
//!
//! Supported routes: `SparseStaticEmbedding` alone (a weight per vocabulary token, no
//! transformer), or `Transformer` (fill-mask) / `MLMTransformer` followed by `SpladePooling`.
//! Every SPLADE route of one Router must share the same two modules (one backbone).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{EncoderError, Result};
use crate::paths::module_dir;

/// The modality every input of this crate has (sentence-transformers infers `"text"` for
/// strings).
const TEXT: &str = "text";

/// What a route runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// `Transformer` (fill-mask) + `SpladePooling`: the backbone of the model folder.
    Splade {
        /// The transformer module's folder.
        transformer_dir: PathBuf,
        /// The SpladePooling module's folder.
        pooling_dir: PathBuf,
        /// The transformer module's type as saved (its last component names the layout).
        transformer_type: String,
    },
    /// `SparseStaticEmbedding`: the folder holding its tokenizer, `config.json` and weights.
    Static {
        /// The module's folder.
        dir: PathBuf,
    },
}

/// One route of a Router: its name and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route's key in `structure` (e.g. `query`, `document`).
    pub name: String,
    /// What the route runs.
    pub kind: RouteKind,
}

/// One entry of `route_mappings`: `(task, modality) -> route`, `None` being the wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMapping {
    /// The task (`None`: any).
    pub task: Option<String>,
    /// The modality as written (`None`: any); a tuple of modalities never matches text.
    pub modality: Option<String>,
    /// The route it leads to.
    pub route: String,
}

/// A Router read from its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterLayout {
    /// `router_config.json` (or the legacy `config.json`) read.
    pub config_path: PathBuf,
    /// The routes in the order they were saved.
    pub routes: Vec<Route>,
    /// The route used when no task is given (after `allow_empty_key`: the first route when
    /// none is named).
    pub default_route: Option<String>,
    /// `route_mappings`, in the order saved.
    pub route_mappings: Vec<RouteMapping>,
}

/// A JSON object whose key order is kept (serde_json's map sorts keys).
struct Ordered<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, T>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct RawConfig {
    types: Ordered<String>,
    structure: Ordered<Vec<String>>,
    #[serde(default)]
    parameters: Option<RawParameters>,
}

#[derive(Deserialize, Default)]
struct RawParameters {
    #[serde(default)]
    default_route: Option<Value>,
    #[serde(default)]
    allow_empty_key: Option<Value>,
    #[serde(default)]
    route_mappings: Option<Ordered<Value>>,
}

fn config_err(path: &Path, field: &str, message: impl ToString) -> EncoderError {
    EncoderError::Config {
        path: path.to_path_buf(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// The last dotted component of a module type.
fn type_name(full: &str) -> &str {
    full.rsplit('.').next().unwrap_or(full)
}

/// What the Router supports, for messages.
pub const SUPPORTED_ROUTES: &str =
    "routes of SparseStaticEmbedding alone, or Transformer (fill-mask) / MLMTransformer followed by SpladePooling";

impl RouterLayout {
    /// Reads the Router saved in `dir` (inside the model folder `root`).
    pub fn read(root: &Path, dir: &Path) -> Result<Self> {
        let mut config_path = dir.join("router_config.json");
        if !config_path.exists() {
            // sentence-transformers' legacy `Asym` layout kept the same keys in config.json.
            config_path = dir.join("config.json");
        }
        crate::paths::check_inside(root, &config_path)?;
        let bytes =
            splade_sparse::files::read_regular_file(&config_path, 16 << 20).map_err(|source| {
                EncoderError::Io {
                    path: config_path.clone(),
                    source,
                }
            })?;
        let raw: RawConfig =
            serde_json::from_slice(&bytes).map_err(|source| EncoderError::Json {
                path: config_path.clone(),
                source,
            })?;
        let type_of = |id: &str| raw.types.0.iter().find(|(k, _)| k == id).map(|(_, t)| t);
        let mut routes = Vec::new();
        for (name, ids) in &raw.structure.0 {
            let field = format!("structure.{name}");
            let mut dirs = Vec::new();
            for id in ids {
                let kind = type_of(id).ok_or_else(|| {
                    config_err(
                        &config_path,
                        &field,
                        format!("module '{id}' is not in 'types'"),
                    )
                })?;
                let module = module_dir(dir, id, &config_path, &field)?;
                crate::paths::check_inside(root, &module)?;
                if !module.is_dir() {
                    return Err(EncoderError::MissingFile {
                        path: module,
                        hint: format!(
                            " (the folder of module '{id}' named in {})",
                            config_path.display()
                        ),
                    });
                }
                dirs.push((type_name(kind).to_string(), kind.clone(), module));
            }
            let kind = match dirs.as_slice() {
                [(t, _, d)] if t == "SparseStaticEmbedding" => RouteKind::Static { dir: d.clone() },
                [(t, full, d), (p, _, pd)]
                    if (t == "Transformer" || t == "MLMTransformer") && p == "SpladePooling" =>
                {
                    RouteKind::Splade {
                        transformer_dir: d.clone(),
                        pooling_dir: pd.clone(),
                        transformer_type: full.clone(),
                    }
                }
                _ => {
                    return Err(EncoderError::UnsupportedModule {
                        module: format!(
                            "Router route '{name}' of [{}]",
                            dirs.iter()
                                .map(|(t, _, _)| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        path: config_path.clone(),
                        supported: SUPPORTED_ROUTES.to_string(),
                    })
                }
            };
            routes.push(Route {
                name: name.clone(),
                kind,
            });
        }
        if routes.is_empty() {
            return Err(config_err(
                &config_path,
                "structure",
                "a Router needs at least one route",
            ));
        }
        let params = raw.parameters.unwrap_or_default();
        let allow_empty_key = match &params.allow_empty_key {
            None | Some(Value::Null) => true,
            Some(v) => v.as_bool().ok_or_else(|| {
                config_err(
                    &config_path,
                    "parameters.allow_empty_key",
                    "expected true or false",
                )
            })?,
        };
        let mut default_route = match &params.default_route {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| {
                        config_err(
                            &config_path,
                            "parameters.default_route",
                            "expected a string",
                        )
                    })?
                    .to_string(),
            ),
        };
        let names: Vec<&str> = routes.iter().map(|r| r.name.as_str()).collect();
        if let Some(d) = &default_route {
            if !names.contains(&d.as_str()) {
                return Err(config_err(
                    &config_path,
                    "parameters.default_route",
                    format!("route '{d}' is not among the routes ({})", names.join(", ")),
                ));
            }
        } else if allow_empty_key {
            default_route = Some(routes[0].name.clone());
        }
        let mut route_mappings = Vec::new();
        if let Some(map) = &params.route_mappings {
            let field = "parameters.route_mappings";
            for (key, route) in &map.0 {
                let route = route.as_str().ok_or_else(|| {
                    config_err(
                        &config_path,
                        &format!("{field}.{key}"),
                        "expected a route name",
                    )
                })?;
                if !names.contains(&route) {
                    return Err(config_err(
                        &config_path,
                        &format!("{field}.{key}"),
                        format!(
                            "route '{route}' is not among the routes ({})",
                            names.join(", ")
                        ),
                    ));
                }
                let (task, modality) = parse_mapping_key(key).ok_or_else(|| {
                    config_err(
                        &config_path,
                        &format!("{field}.{key}"),
                        "expected a key like \"('query', 'text')\" or \"(None, 'text')\"",
                    )
                })?;
                route_mappings.push(RouteMapping {
                    task,
                    modality,
                    route: route.to_string(),
                });
            }
        }
        Ok(Self {
            config_path,
            routes,
            default_route,
            route_mappings,
        })
    }

    /// The route named `name`.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    /// The route a text input with `task` (`None`: plain `encode`) takes, as
    /// sentence-transformers resolves it: `route_mappings` by `(task, text)`, `(task, any)`,
    /// `(any, text)`, `(any, any)`; then a route named as the task, then one named `text`;
    /// then the default route. A task that nothing matches is an error, as is no task without
    /// a default route; both name the routes there are.
    pub fn resolve(&self, task: Option<&str>) -> Result<&Route> {
        let find = |t: Option<&str>, m: Option<&str>| {
            self.route_mappings
                .iter()
                .find(|r| r.task.as_deref() == t && r.modality.as_deref() == m)
        };
        let mapped = find(task, Some(TEXT))
            .or_else(|| find(task, None))
            .or_else(|| find(None, Some(TEXT)))
            .or_else(|| find(None, None))
            .map(|m| m.route.as_str());
        let name = mapped
            .or_else(|| task.filter(|t| self.route(t).is_some()))
            .or_else(|| self.route(TEXT).map(|r| r.name.as_str()));
        let name = match (name, task) {
            (Some(name), _) => name,
            (None, Some(task)) => {
                return Err(EncoderError::NoRoute {
                    model: self.config_path.clone(),
                    task: Some(task.to_string()),
                    available: self.routes_string(),
                })
            }
            (None, None) => match &self.default_route {
                Some(d) => d.as_str(),
                None => {
                    return Err(EncoderError::NoRoute {
                        model: self.config_path.clone(),
                        task: None,
                        available: self.routes_string(),
                    })
                }
            },
        };
        self.route(name).ok_or_else(|| EncoderError::NoRoute {
            model: self.config_path.clone(),
            task: task.map(str::to_string),
            available: self.routes_string(),
        })
    }

    /// The routes as sentence-transformers lists them in its errors.
    pub fn routes_string(&self) -> String {
        let mut out: Vec<String> = self
            .routes
            .iter()
            .map(|r| format!("task='{}'", r.name))
            .collect();
        for m in &self.route_mappings {
            out.push(match (&m.task, &m.modality) {
                (t, None) => format!("task={}", py_repr(t.as_deref())),
                (None, Some(m)) => format!("modality='{m}'"),
                (Some(t), Some(m)) => format!("(task='{t}', modality='{m}')"),
            });
        }
        match out.len() {
            0 => String::new(),
            1 => out.remove(0),
            n => format!("{} and {}", out[..n - 1].join(", "), out[n - 1]),
        }
    }
}

fn py_repr(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_string(), |s| format!("'{s}'"))
}

/// Parses a saved `route_mappings` key, the Python repr of a `(task, modality)` tuple:
/// `"('query', 'text')"`, `"(None, 'text')"`, `"('query', None)"`, `"(None, ('image', 'text'))"`.
fn parse_mapping_key(key: &str) -> Option<(Option<String>, Option<String>)> {
    let inner = key.trim().strip_prefix('(')?.strip_suffix(')')?;
    // Split at the first top-level comma (the modality may itself be a tuple).
    let comma = inner.find(',')?;
    let (task, modality) = (inner[..comma].trim(), inner[comma + 1..].trim());
    Some((py_str_or_none(task)?, {
        if modality.starts_with('(') {
            Some(modality.to_string())
        } else {
            py_str_or_none(modality)?
        }
    }))
}

fn py_str_or_none(s: &str) -> Option<Option<String>> {
    if s == "None" {
        return Some(None);
    }
    let quoted =
        (s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"'));
    (quoted && s.len() >= 2).then(|| Some(s[1..s.len() - 1].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_keys_parse_like_python_reprs() {
        assert_eq!(
            parse_mapping_key("('query', 'text')"),
            Some((Some("query".into()), Some("text".into())))
        );
        assert_eq!(parse_mapping_key("(None, None)"), Some((None, None)));
        assert_eq!(
            parse_mapping_key("(\"document\", None)"),
            Some((Some("document".into()), None))
        );
        assert_eq!(
            parse_mapping_key("(None, ('image', 'text'))"),
            Some((None, Some("('image', 'text')".into())))
        );
        assert_eq!(parse_mapping_key("query"), None);
        assert_eq!(parse_mapping_key("(query, None)"), None);
    }
}
