"""One settings object, read once: YAML file (--config / HANCHANG_CONFIG) plus HANCHANG_* env.

Precedence: explicit arguments > environment > YAML file > defaults. A bad value
raises `ConfigError` naming the file, the key and what is wrong; the server then
refuses to start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from hanchang import plugins
from hanchang.core.grades import Grade
from hanchang.core.models import EMBEDDED_MODEL_NAME, ModelSpec, Zone
from hanchang.core.pii_modes import DEFAULT_EXTERNAL, DEFAULT_INTERNAL, PiiMode
from hanchang.guard.destinations import DestinationPolicy, parse_allowed_hosts


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelPrice(_Strict):
    """What a model costs, in won per 1,000 tokens (costs and budgets are shown in won)."""

    input_per_1k_tokens: float = Field(default=0.0, ge=0)
    output_per_1k_tokens: float = Field(default=0.0, ge=0)


class ModelConfig(_Strict):
    name: str = Field(min_length=1)
    backend: str  # openai | llamacpp | a kind a plugin registers (hanchang.backends)
    base_url: str | None = None
    path: str | None = None
    api_key_env: str | None = None
    upstream_model: str | None = None
    zone: Zone
    max_grade: Grade
    context_window: int = Field(default=4096, ge=256)
    aliases: list[str] = []
    fallbacks: list[str] = []
    kind: Literal["chat", "embedding"] = "chat"
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    threads: int | None = Field(default=None, ge=1)
    # Source text a grounded answer gives this model, in tokens. Unset: sized from the model's
    # measured reading speed so answers meet the SLO (slo.first_token_seconds).
    grounding_tokens: int | None = Field(default=None, ge=100)
    price: ModelPrice = ModelPrice()
    # A vLLM server started with --enable-lora (and VLLM_ALLOW_RUNTIME_LORA_UPDATING): where it
    # reads Hanchang's adapters folder (HANCHANG_HOME/models/adapters, on storage both see).
    lora_root: str | None = None

    @field_validator("max_grade", mode="before")
    @classmethod
    def _grade(cls, value: Any) -> Grade:
        return Grade.parse(value)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        kinds = ("openai", "llamacpp", *(name for name, _ in plugins.load(plugins.BACKENDS)))
        if value not in kinds:
            raise ValueError(f"unknown backend '{value}': use one of {', '.join(kinds)}")
        return value

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.zone is Zone.EXTERNAL and self.max_grade is not Grade.OPEN:
            raise ValueError(
                "a model in zone 'external' may only clear grade O (공개); "
                f"got max_grade {self.max_grade.value}"
            )
        return self

    def to_spec(self, home: Path) -> ModelSpec:
        path = self.path
        if self.backend == "llamacpp" and not path:
            path = str(home / "models" / f"{EMBEDDED_MODEL_NAME}.gguf")
        return ModelSpec(
            name=self.name,
            backend=self.backend,
            zone=self.zone,
            max_grade=self.max_grade,
            context_window=self.context_window,
            base_url=self.base_url,
            path=path,
            api_key_env=self.api_key_env,
            upstream_model=self.upstream_model,
            aliases=tuple(self.aliases),
            fallbacks=tuple(self.fallbacks),
            kind=self.kind,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            price_in=self.price.input_per_1k_tokens,
            price_out=self.price.output_per_1k_tokens,
            extra={"home": str(home), **({"threads": self.threads} if self.threads else {}),
                   **({"lora_root": self.lora_root} if self.lora_root else {}),
                   **({"grounding_tokens": self.grounding_tokens} if self.grounding_tokens else {})},
        )


class RateLimit(_Strict):
    requests_per_minute: int = Field(default=0, ge=0, description="0 means unlimited")
    tokens_per_minute: int = Field(default=0, ge=0, description="0 means unlimited")


class KeyRateLimit(RateLimit):
    requests_per_minute: int = Field(default=600, ge=0)
    tokens_per_minute: int = Field(default=200_000, ge=0)


class AgencyRateLimit(RateLimit):
    requests_per_minute: int = Field(default=3_000, ge=0)
    tokens_per_minute: int = Field(default=1_000_000, ge=0)


class LimitsConfig(_Strict):
    # Separate classes so an override of one field (env or YAML) keeps the other's default.
    per_key: KeyRateLimit = KeyRateLimit()
    per_agency: AgencyRateLimit = AgencyRateLimit()
    agencies: dict[str, RateLimit] = {}  # per-agency overrides by agency code


class BudgetLimit(_Strict):
    """What one agency or user may use per budget period; 0 means unlimited."""

    requests: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    won: float = Field(default=0.0, ge=0)

    @property
    def unlimited(self) -> bool:
        return not (self.requests or self.tokens or self.won)


class BudgetsConfig(_Strict):
    """Monthly (or daily) budgets per agency and per user, reset by the calendar in `timezone`."""

    period: Literal["month", "day"] = "month"
    timezone: str = "Asia/Seoul"
    warn_at: float = Field(default=0.8, gt=0, le=1)  # the window warns from this share on
    per_agency: BudgetLimit = BudgetLimit()
    per_user: BudgetLimit = BudgetLimit()
    agencies: dict[str, BudgetLimit] = {}  # per-agency budgets by agency code

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Seoul)") from None
        return value


class MetricsConfig(_Strict):
    # GET /metrics answers a platform admin's API key, or this token (from the environment
    # variable named here) for a Prometheus scraper that should hold no API key.
    token_env: str = "HANCHANG_METRICS_TOKEN"
    health_probe_seconds: float = Field(default=60.0, ge=5)  # model reachability, for availability


class McpConfig(_Strict):
    # Hanchang's own MCP endpoint (/mcp): knowledge search, grounded answers and work services for
    # MCP clients (IDE and desktop agents) with the caller's API key and rights. What an MCP client
    # receives leaves the platform's grade policy (its own model reads it), so nothing above
    # `max_grade` is returned: passages above it are withheld, answers grounded above it refused.
    enabled: bool = True
    max_grade: Grade = Grade.OPEN
    # Personal data in what a tool returns (passages, answers, results) leaves the platform as text
    # sent to an external model does: masked by default; `allow` (counted), `mask`, `block`
    # (the tool answers an error), per agency where one decides otherwise.
    pii: PiiMode = PiiMode.MASK
    pii_by_agency: dict[str, PiiMode] = {}

    def pii_for(self, agency_code: str) -> PiiMode:
        mode = self.pii_by_agency.get(agency_code, self.pii)
        return PiiMode.MASK if mode is PiiMode.PSEUDONYMIZE else mode  # nothing comes back to restore

    @field_validator("max_grade", mode="before")
    @classmethod
    def _grade(cls, value: Any) -> Grade:
        return Grade.parse(value)


class ConnectorsConfig(_Strict):
    """Where agency APIs registered as connectors (the `act` service, MCP servers) may be. Empty:
    no connector can be registered or called. Entries: `host`, `host:port`, `*.domain`, or a
    network `10.20.0.0/16`. Loopback, private and link-local addresses are reachable only when
    named exactly or by network, never through a wildcard."""

    allowed_hosts: list[str] = []

    @field_validator("allowed_hosts")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        parse_allowed_hosts(value)
        return value

    def policy(self) -> DestinationPolicy:
        return DestinationPolicy(tuple(self.allowed_hosts))


class OidcConfig(_Strict):
    """Single sign-on through an agency's OpenID Connect provider (authorization code + PKCE).
    Password sign-in stays for the embedded default; SSO is on when `issuer` is set."""

    issuer: str | None = None  # e.g. https://sso.mois.go.kr (discovery at /.well-known/openid-configuration)
    client_id: str = "hanchang"
    client_secret_env: str = "HANCHANG_OIDC_CLIENT_SECRET"  # the secret itself never sits in a file
    scopes: list[str] = ["openid", "profile", "email"]
    username_claim: str = "preferred_username"
    agency_claim: str = "agency"  # the claim naming the user's agency code
    default_agency: str | None = None  # for a provider of one agency that sends no agency claim
    role_claim: str | None = "roles"
    role_map: dict[str, str] = {}  # provider role -> Hanchang role (the highest wins); unmapped: user
    create_users: bool = True  # a first sign-in creates the user in their agency
    # Accounts are found by (issuer, subject) only. An administrator may allow a first sign-in
    # to link the agency's existing account of the same name (one not linked at this provider),
    # when the ID token's `link_verified_claim` is true (None: the provider's names are trusted).
    link_by_username: bool = False
    link_verified_claim: str | None = "email_verified"
    label_ko: str = "기관 통합 로그인 (SSO)"
    public_url: str | None = None  # Hanchang's address as the browser sees it (behind a proxy)

    @field_validator("role_map")
    @classmethod
    def _roles(cls, value: dict[str, str]) -> dict[str, str]:
        from hanchang.core.principal import Role

        return {claim: Role.parse(role).value for claim, role in value.items()}

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("oidc.issuer must be the provider's http(s) URL")
        return value.rstrip("/") if value else value


class ReportConfig(_Strict):
    # The KPI report's stated assumption: staff minutes one successful call saves, per service
    # (usage endpoint, e.g. service.qa); "*" for any other. Shown beside the figure it makes.
    minutes_saved: dict[str, float] = {"service.qa": 10.0, "service.counsel": 10.0, "service.draft": 30.0,
                                       "service.summarize": 15.0, "service.translate": 15.0,
                                       "chat.completions": 5.0, "*": 3.0}


class PolicyConfig(_Strict):
    # When the data grade exceeds the requested model's clearance: answer with an internal model
    # that clears it (true), or refuse with 403 (false).
    reroute: bool = False
    preferred_internal: list[str] = []


class PiiConfig(_Strict):
    """Personal-data mode per model zone: allow (count only) | mask | pseudonymize | block."""

    internal: PiiMode = DEFAULT_INTERNAL
    external: PiiMode = DEFAULT_EXTERNAL


class AuditConfig(_Strict):
    # Agencies whose prompt text is kept in the audit trail, encrypted with the Fernet key
    # in the environment variable `key_env`. Nobody else's prompt text is stored.
    store_prompts_for: list[str] = []
    key_env: str = "HANCHANG_AUDIT_KEY"


class EncryptionConfig(_Strict):
    """Encryption at rest (store/keyring.py): S and C data always; O too when `encrypt_open`."""

    # Where the agencies' key-encryption keys live: a local key file (created by setup, mode
    # 0600; keep a backup of it apart from the database's) or an HSM through PKCS#11.
    provider: Literal["file", "pkcs11"] = "file"
    key_file: Path | None = None  # default: HANCHANG_HOME/keys/hanchang.keys
    pkcs11_module: str = "/usr/lib/softhsm/libsofthsm2.so"
    pkcs11_token: str = "hanchang"
    pkcs11_pin_env: str = "HANCHANG_PKCS11_PIN"  # the PIN is read from this environment variable
    encrypt_open: bool = False
    # How often the background sweep looks for values to seal or re-seal (after a rotation,
    # a grade raised, or data from before encryption).
    sweep_seconds: float = Field(default=60.0, gt=0)


class TrainingConfig(_Strict):
    """Fine-tuning (hanchang/training): whether this server also runs queued jobs."""

    # Run queued fine-tuning jobs here, one at a time, each in its own process. Turn off on API
    # hosts when a training host runs `hanchang finetune worker`.
    run_jobs: bool = True
    threads: int | None = Field(default=None, ge=1)  # CPU threads a job may use (default: all)
    # The eval gate: the shipped (or the agency's own) regression sets and the criterion each is
    # scored on, the share of a set's items a model may lose against its base, and the answer
    # length of the gate's runs (its sets ask for short answers).
    gate_regression: dict[str, str] = {"refusal-ko": "refusal", "sample-holdout": "key_fact"}
    gate_margin: float = Field(default=0.05, ge=0, le=1)
    gate_max_tokens: int = Field(default=256, ge=8, le=4096)
    # Serve adapters trained on a model from another configured model with the same weights,
    # e.g. {"local": "vllm-qwen"}: trained on the embedded GGUF, served by vLLM's LoRA API.
    serve_on: dict[str, str] = {}


class KnowledgeConfig(_Strict):
    # An embedding model (kind: embedding) for hybrid retrieval; BM25 alone when unset.
    embedding_model: str | None = None
    top_k: int = Field(default=5, ge=1, le=20)
    # Where retrieval runs: "auto" = inside PostgreSQL when the database is PostgreSQL (one index
    # every host shares), embedded files under HANCHANG_HOME on SQLite; or force either.
    index: Literal["auto", "embedded", "postgres"] = "auto"
    # An upload larger than this, or with a PDF or image of more pages, is read in the background
    # (a job with progress, cancellable, resumed after a restart) instead of while the user waits.
    background_over_bytes: int = Field(default=4 * 1024 * 1024, ge=0)
    background_over_pages: int = Field(default=20, ge=0)


class CustomServiceConfig(_Strict):
    """An agency's own service without code: instructions applied to what the user writes."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    name_ko: str = Field(min_length=1, max_length=50)
    name_en: str = ""
    description_ko: str = ""
    instructions: str = Field(min_length=1, max_length=8000)
    input_label_ko: str = "내용"
    agencies: list[str] = []  # agency codes that see it; empty: every agency
    max_tokens: int = Field(default=1024, ge=16, le=8192)


class ServicesConfig(_Strict):
    # Fixed translations per agency code ("*" for every agency): {"디지털플랫폼정부": "Digital Platform Government"}
    glossary: dict[str, dict[str, str]] = {}
    custom: list[CustomServiceConfig] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> ServicesConfig:
        ids = [c.id for c in self.custom]
        if len(ids) != len(set(ids)):
            raise ValueError(f"custom service ids must be unique: {ids}")
        return self


class LibraryConfig(_Strict):
    """The common asset library (공유 자산)."""

    # A platform admin approves each published version before other agencies see it.
    review_required: bool = False
    default_licence: str = "공공누리 제1유형(출처표시) / KOGL Type 1"


class SloConfig(_Strict):
    """Service-level objectives (guideline 3.2.5, table 20): 90 % of Q&A answered within
    `qa_seconds`, of other inference within `inference_seconds`; monthly availability; capacity."""

    qa_seconds: float = Field(default=7.0, gt=0)
    first_token_seconds: float = Field(default=2.0, gt=0)  # grounding is sized to read within this
    inference_seconds: float = Field(default=10.0, gt=0)
    latency_percentile: float = Field(default=90.0, gt=0, lt=100)
    availability: float = Field(default=0.9999, gt=0, lt=1)
    capacity_users: int = Field(default=100, ge=1)  # concurrent users the platform is sized for


class AgencyConfig(_Strict):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1)


def _default_models() -> list[ModelConfig]:
    return [
        ModelConfig(
            name=EMBEDDED_MODEL_NAME,
            backend="llamacpp",
            zone=Zone.INTERNAL,
            max_grade=Grade.CLASSIFIED,
            context_window=4096,
            aliases=["local", "default"],
        )
    ]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HANCHANG_", env_nested_delimiter="__", extra="forbid"
    )

    home: Path = Path("~/.hanchang")
    config: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    # How long a server uses a cached API key check or budget overrides before reading them again.
    # On PostgreSQL a revocation or an override reaches every server at once (NOTIFY), so this is
    # only the bound when notifications are down; on SQLite it is the bound.
    cache_seconds: float = Field(default=5.0, gt=0, le=3600)
    redis_prefix: str = Field(default="hanchang", min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"
    cookie_secure: bool = False  # set true behind HTTPS so session cookies never travel in clear

    models: list[ModelConfig] = Field(default_factory=_default_models)
    default_model: str | None = None
    agencies: list[AgencyConfig] = [AgencyConfig(code="DEMO", name="한창 시범기관")]
    limits: LimitsConfig = LimitsConfig()
    policy: PolicyConfig = PolicyConfig()
    pii: PiiConfig = PiiConfig()
    audit: AuditConfig = AuditConfig()
    encryption: EncryptionConfig = EncryptionConfig()
    training: TrainingConfig = TrainingConfig()
    knowledge: KnowledgeConfig = KnowledgeConfig()
    services: ServicesConfig = ServicesConfig()
    library: LibraryConfig = LibraryConfig()
    slo: SloConfig = SloConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    metrics: MetricsConfig = MetricsConfig()
    report: ReportConfig = ReportConfig()
    mcp: McpConfig = McpConfig()
    oidc: OidcConfig = OidcConfig()
    connectors: ConnectorsConfig = ConnectorsConfig()
    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _check_model_names(self) -> Settings:
        names: dict[str, str] = {}
        for model in self.models:
            for label in (model.name, *model.aliases):
                if label in names:
                    raise ValueError(f"model name or alias {label!r} is used twice")
                names[label] = model.name
        for model in self.models:
            for fallback in model.fallbacks:
                if fallback not in names:
                    raise ValueError(
                        f"model {model.name!r} falls back to {fallback!r}, which is not configured"
                    )
        if self.default_model and self.default_model not in names:
            raise ValueError(f"default_model {self.default_model!r} is not a configured model")
        embedding = self.knowledge.embedding_model
        if embedding and not any(embedding in (m.name, *m.aliases) and m.kind == "embedding"
                                 for m in self.models):
            raise ValueError(f"knowledge.embedding_model {embedding!r} is not a configured model "
                             "of kind 'embedding'")
        if self.knowledge.index == "postgres" and not self.resolved_database_url.startswith("postgres"):
            raise ValueError("knowledge.index 'postgres' needs a PostgreSQL database_url; use 'auto' "
                             "or 'embedded' with SQLite")
        for name in self.policy.preferred_internal:
            if name not in names:
                raise ValueError(f"policy.preferred_internal names {name!r}, which is not configured")
        if self.audit.store_prompts_for and not os.environ.get(self.audit.key_env):
            raise ValueError(
                f"audit.store_prompts_for is set but the encryption key variable "
                f"{self.audit.key_env} is empty; create one with: hanchang audit new-key"
            )
        return self

    @property
    def resolved_key_file(self) -> Path:
        return (self.encryption.key_file or self.home / "keys" / "hanchang.keys").expanduser()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'hanchang.db'}"

    def model_specs(self) -> list[ModelSpec]:
        return [m.to_spec(self.home) for m in self.models]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    """Values from the YAML file that `load_settings` parsed (passed via a class attribute)."""

    data: ClassVar[dict[str, Any]] = {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found. Check --config or HANCHANG_CONFIG.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not UTF-8 text ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (models:, limits: …)")
    for key in ("home", "config"):
        if key in data:
            raise ConfigError(f"{path}: key '{key}' cannot be set in the file; use HANCHANG_{key.upper()}")
    return data


def _format_location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment and the YAML file; raise ConfigError when unusable."""
    config_path = config or os.environ.get("HANCHANG_CONFIG")
    path = Path(config_path).expanduser().resolve() if config_path else None
    _YamlSource.data = _read_yaml(path) if path else {}
    source = str(path) if path else "environment (HANCHANG_*)"
    try:
        settings = Settings(**({"config": path} if path else {}), **overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = _format_location(tuple(err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            if err["type"] not in {"missing"} and not isinstance(got, dict | list):
                message += f" (got {got!r})"
            problems.append(f"  {key}: {message}")
        raise ConfigError(
            f"{source}: configuration is invalid (values may also come from HANCHANG_* "
            "environment variables):\n" + "\n".join(problems)
        ) from exc
    finally:
        _YamlSource.data = {}
    return settings
