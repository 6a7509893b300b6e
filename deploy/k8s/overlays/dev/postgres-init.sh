#!/bin/sh
# Runs once, when the PostgreSQL volume is empty: one database per service, each owned by a
# role of its own and closed to the others (each service owns its data, DESIGN §2).
set -eu

for service in user product mercadolibre ai_content; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="intellipost_$service" -v password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
