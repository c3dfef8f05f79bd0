#!/usr/bin/env bash
# Create the MariaDB/MySQL account the MySQL tests log in with, when a server is reachable
# as root over the socket or 127.0.0.1. Without a server this is a no-op: the MySQL tests
# then skip with the reason (under CI they fail instead).
set -u
PW="${MLMD_MAGIC_TEST_MYSQL_PASSWORD:-Tst-pw_9d2f!x}"
SQL="CREATE USER IF NOT EXISTS 'mlmd_magic_test'@'%' IDENTIFIED BY '${PW}';
ALTER USER 'mlmd_magic_test'@'%' IDENTIFIED BY '${PW}';
GRANT ALL PRIVILEGES ON \`mlmd\\_magic\\_test\\_%\`.* TO 'mlmd_magic_test'@'%';
FLUSH PRIVILEGES;"
for client in mariadb mysql; do
  if command -v "$client" >/dev/null 2>&1; then
    if "$client" -uroot -h127.0.0.1 -e "$SQL" 2>/dev/null || "$client" -uroot -e "$SQL" 2>/dev/null; then
      echo "mysql-test-account: account mlmd_magic_test ready"
      exit 0
    fi
  fi
done
echo "mysql-test-account: no MySQL/MariaDB server reachable as root; MySQL tests will skip (fail under CI)"
exit 0
