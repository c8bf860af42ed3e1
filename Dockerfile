# Serving image: the base install (onnxruntime + tokenizers + FastAPI) and the PostgreSQL
# driver, no torch.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY serving ./serving
COPY training ./training
COPY evaluation ./evaluation
RUN pip install --no-cache-dir ".[postgres]" && useradd --system --uid 10001 scorer \
    && mkdir /feedback && chown scorer /feedback
# Feedback store: a SQLite file on a volume by default; set a postgresql+psycopg:// URL instead.
ENV HELPDESK_FEEDBACK_URL=sqlite:////feedback/feedback.db
VOLUME /feedback
COPY models/release ./models/release
USER scorer
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["helpdesk-scorer", "serve", "--host", "0.0.0.0", "--port", "8000"]
