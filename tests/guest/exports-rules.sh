#!/bin/sh
# Guest side of the export-rules test. The host tells what this client should be able to do
# through the name of a marker file it cannot create itself: the export holds RULE-<rule>.
# rule rw-squash: writes allowed, root squashed to 65534; rule ro: reads only.
set -e
RULE=$(ls /mnt | sed -n 's/^RULE-//p')
echo "rule for this client: $RULE"
cat /mnt/hello
case "$RULE" in
  rw-squash)
    echo data > /mnt/by-guest-root
    ls -ln /mnt/by-guest-root
    OWNER=$(stat -c %u /mnt/by-guest-root)
    [ "$OWNER" = 65534 ] && echo "ok 1 - root's file is owned by 65534" || { echo "not ok 1 - owner $OWNER"; exit 1; }
    ;;
  ro)
    if (echo x > /mnt/nope) 2>/tmp/err; then echo "not ok 1 - write succeeded on a read-only export"; exit 1; fi
    cat /tmp/err
    grep -q "Read-only file system" /tmp/err && echo "ok 1 - write refused: read-only file system" || { echo "not ok 1 - wrong error"; exit 1; }
    ;;
  *) echo "unknown rule"; exit 1 ;;
esac
