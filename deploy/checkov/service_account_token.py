"""MATIH's own checkov check, run by `cargo xtask check deploy`.

CKV_MATIH_1: a pod's service account token is mounted only where it is needed.
checkov's CKV_K8S_38 asks for automountServiceAccountToken: false; this one also
asks that a projected serviceAccountToken volume, when the pod declares one, is
mounted by the containers named in ALLOWED and by no other container.
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.kubernetes.checks.resource.base_spec_check import BaseK8Check

# The connector service reads the token for the kubernetes secret store.
ALLOWED = {"service"}


class ServiceAccountTokenOnlyWhereNeeded(BaseK8Check):
    def __init__(self) -> None:
        super().__init__(
            name="Service account token mounted only into the containers that need it",
            id="CKV_MATIH_1",
            categories=(CheckCategories.KUBERNETES,),
            supported_entities=("Deployment", "StatefulSet", "DaemonSet", "Pod"),
        )

    def scan_spec_conf(self, conf: dict[str, Any]) -> CheckResult:
        spec = conf.get("spec", {}) if conf.get("kind") == "Pod" else (
            conf.get("spec", {}).get("template", {}).get("spec", {})
        )
        if not isinstance(spec, dict) or spec.get("automountServiceAccountToken") is not False:
            return CheckResult.FAILED
        token_volumes = {
            v.get("name")
            for v in spec.get("volumes") or []
            if any("serviceAccountToken" in s for s in (v.get("projected") or {}).get("sources") or [])
        }
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            mounts = {m.get("name") for m in c.get("volumeMounts") or []}
            if mounts & token_volumes and c.get("name") not in ALLOWED:
                return CheckResult.FAILED
        return CheckResult.PASSED


check = ServiceAccountTokenOnlyWhereNeeded()
