#!/bin/sh
# A command handler for pgq-master: the payload arrives on stdin, the job's
# facts in PGQ_* variables. Exit 0 = done, 75 = try again later, anything
# else = failed (the end of stderr becomes the traceback).
payload=$(cat)
case $payload in
  fail*)  echo "refusing payload: $payload" >&2; exit 1 ;;
  retry*) echo "not now" >&2; exit 75 ;;
esac
printf 'job %s (%s, attempt %s): %s\n' "$PGQ_JOB_ID" "$PGQ_ENTRYPOINT" \
  "$PGQ_ATTEMPTS" "$payload" >&2
