# The runtime image: the service and its runtime requirements only. Test and development
# dependencies (SecantusDB among them, GPL-2.0) are never installed here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Requirements first, so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
# Static files (admin, API docs) collected at build time; settings need some key to load.
RUN DJANGO_SECRET_KEY=build-only-not-used-at-run-time python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 --no-create-home jobscheduler
USER jobscheduler

EXPOSE 8000
# Worker count: gunicorn reads WEB_CONCURRENCY (default 1).
CMD ["gunicorn", "jobscheduler.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
