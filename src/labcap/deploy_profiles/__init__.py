"""Deployment profiles: the Compose or K3s deployment a measured capacity calls for.

``build_profile(run_dir, ProfileSettings(platform=...), out)`` sizes the deployment
from the run's capacity plan and the expected users, renders it from the jinja2
templates under ``templates/``, validates every file, and only then writes them.

The names below are imported from their modules on first use (PEP 562), so importing
``labcap.deploy_profiles.settings`` (``labcap profile --help``) loads no renderer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcap.lazy import lazy_exports

if TYPE_CHECKING:
    from labcap.deploy_profiles.gpu import GPU_SHARING, MIG_MODELS, GpuPlan, plan_gpus
    from labcap.deploy_profiles.render import (
        Profile,
        RenderedFile,
        build_profile,
        random_secret,
        render_profile,
        write_profile,
    )
    from labcap.deploy_profiles.sizing import PLATFORMS, Decision, ProfileSettings, Sizing, size
    from labcap.deploy_profiles.validate import K8S_VERSION, ProfileValidationError

_HOMES = {
    "gpu": ("GPU_SHARING", "MIG_MODELS", "GpuPlan", "plan_gpus"),
    "render": (
        "Profile",
        "RenderedFile",
        "build_profile",
        "random_secret",
        "render_profile",
        "write_profile",
    ),
    "sizing": ("PLATFORMS", "Decision", "ProfileSettings", "Sizing", "size"),
    "validate": ("K8S_VERSION", "ProfileValidationError"),
}
__getattr__ = lazy_exports(__name__, _HOMES, globals())


__all__ = [
    "GPU_SHARING",
    "K8S_VERSION",
    "MIG_MODELS",
    "PLATFORMS",
    "Decision",
    "GpuPlan",
    "Profile",
    "ProfileSettings",
    "ProfileValidationError",
    "RenderedFile",
    "Sizing",
    "build_profile",
    "plan_gpus",
    "random_secret",
    "render_profile",
    "size",
    "write_profile",
]
