#!/bin/sh
# Registers wagate's Temporal namespace with its retention once the server answers,
# and the custom search attributes GET /api/tasks filters on (WagateKind, WagateStatus:
# Keyword; WagateCreatedAt, WagateSendAt: Datetime): the namespace job of
# docker-compose.yml (temporalio/admin-tools image, temporal CLI). Safe to re-run: an
# existing namespace is left as it is, an existing attribute too.
#
# Environment: TEMPORAL_ADDRESS (temporal:7233), TEMPORAL_NAMESPACE (default),
# NAMESPACE_RETENTION (72h: how long finished tasks stay visible in the Web UI).
set -eu

address="${TEMPORAL_ADDRESS:-temporal:7233}"
namespace="${TEMPORAL_NAMESPACE:-default}"
retention="${NAMESPACE_RETENTION:-72h}"

tries=0
until temporal operator cluster health --address "$address" >/dev/null 2>&1; do
	tries=$((tries + 1))
	if [ "$tries" -ge 60 ]; then
		echo "create-namespace: Temporal at $address is not healthy" >&2
		exit 1
	fi
	sleep 2
done

if temporal operator namespace describe --address "$address" -n "$namespace" >/dev/null 2>&1; then
	echo "namespace $namespace exists"
elif ! out=$(temporal operator namespace create --address "$address" -n "$namespace" --retention "$retention" 2>&1); then
	case "$out" in
	*"already"*) echo "namespace $namespace exists" ;;
	*) echo "$out" >&2; exit 1 ;;
	esac
else
	echo "namespace $namespace created with retention $retention"
fi

# The search attributes of wagate's tasks; without them tasks still run, but
# GET /api/tasks answers 503.
for attr in WagateKind:Keyword WagateStatus:Keyword WagateCreatedAt:Datetime WagateSendAt:Datetime; do
	name="${attr%%:*}"
	type="${attr#*:}"
	if ! out=$(temporal operator search-attribute create --address "$address" -n "$namespace" --name "$name" --type "$type" 2>&1); then
		case "$out" in
		*"already"*) echo "search attribute $name exists" ;;
		*) echo "$out" >&2; exit 1 ;;
		esac
	else
		echo "search attribute $name ($type) created"
	fi
done
