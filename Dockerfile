# One image for every service of the stack; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY devices devices
COPY seeds seeds
COPY store store
COPY ingest ingest
COPY processing processing
COPY dashboard dashboard
COPY simulators simulators
COPY ioc ioc
RUN pip install --no-cache-dir . && useradd --system ioc
USER ioc
# numba caches the compiled coverage kernel; site-packages is not the ioc user's to write.
ENV NUMBA_CACHE_DIR=/tmp/numba-cache
ENTRYPOINT ["ioc"]
