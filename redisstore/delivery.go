package redisstore

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wagate/wagate/shared"
)

// Delivery tracking (docs/delivery.md): what became of every message a task sent.
//
// Per task, under "task:<id>:":
//
//	dl          hash: num (the task's short number), delivered, read, failed_after_send
//	dl:<n>      hash of recipients n*50 .. n*50+49: field <index%50> = the record,
//	            w<index%50> = its wamid
//	dl:err      hash: Meta error code -> its title (or the send's error text), first seen
//
// A record is "<ledger><rank>|<phone>|<sent>|<delivered>|<read>|<failed>|<code>":
// ledger is '-' (no outcome yet), 's' (Meta accepted the send) or 'f' (the send failed);
// rank is the furthest status webhook: '0' none, '1' sent, '2' delivered, '3' read, '9'
// failed. Times are base-36 seconds since deliveryEpoch, empty when not seen. The wamid
// is stored as "~" and the raw bytes of Meta's base64 (16 bytes fewer than the text), or
// "=" and the text when it is not in that form. Both values stay within 64 bytes and a
// bucket within 128 fields, so buckets keep Redis's compact listpack encoding, which
// costs about the bytes of the values (a hashtable costs about twice as much).
//
// Globally:
//
//	dl:seq                    counter of task numbers
//	dl:n:<num>                the task id of a task number
//	dl:w:days                 hash: <day> -> level in use, <day>:n -> wamids at that level
//	dl:w:<day>:<level>:<bin>  hash: 8-byte FNV-1a of a wamid -> "<num>:<index>"
//
// The reverse index (wamid -> task, recipient) is split by the day the wamid was
// recorded and, within a day, into 1024·2^level bins; a day moves to the next level
// whenever its level holds 80 wamids per bin, so bins stay below the listpack limit (128)
// whatever the volume. A bin expires TTL after its day ends.
const (
	deliveryEpoch   = 1735689600 // 2025-01-01T00:00:00Z
	indexBaseBins   = 1024
	indexPerBin     = 80
	defaultTrackTTL = 30 * 24 * time.Hour
	// dlBucket recipients per record hash: two fields each (the record and its wamid),
	// 100 fields, below Redis's 128-entry listpack limit.
	dlBucket = 50
	day      = 24 * time.Hour
)

// Delivery states of one recipient, as the listing reports them.
const (
	RecipientPending   = "pending"
	RecipientSent      = "sent"
	RecipientDelivered = "delivered"
	RecipientRead      = "read"
	RecipientFailed    = "failed"
)

// SetDeliveryTTL sets how long delivery tracking is kept: a finished task's records for
// this long after it finished, the wamid index for this long after the day a wamid was
// recorded. It should be TASK_SUMMARY_TTL, so that task-status's counts move as long as
// it answers. The default is 30 days.
func (s *Store) SetDeliveryTTL(d time.Duration) {
	if d > 0 {
		s.trackTTL = d
	}
}

func (s *Store) deliveryTTL() time.Duration {
	if s.trackTTL > 0 {
		return s.trackTTL
	}
	return defaultTrackTTL
}

func (s *Store) dlMetaKey(taskID string) string { return s.taskKey(taskID, "dl") }
func (s *Store) dlErrKey(taskID string) string  { return s.taskKey(taskID, "dl", "err") }
func (s *Store) dlBucketKey(taskID string, bucket int) string {
	return s.taskKey(taskID, "dl", strconv.Itoa(bucket))
}

// deliveryLua is shared by the scripts: record parsing, the monotonic step and the
// counters. contrib counts a recipient in delivered, read and failed_after_send only
// once the ledger says Meta accepted it, so that the counters never exceed sent; a status
// that raced ahead of the ledger write is counted when the ledger write lands.
const deliveryLua = `
local EPOCH = 1735689600
local DIG = '0123456789abcdefghijklmnopqrstuvwxyz'
local function b36(n)
  n = math.floor(n)
  if n <= 0 then return '0' end
  local s = ''
  while n > 0 do
    local d = n % 36
    s = string.sub(DIG, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  end
  return s
end
local function parse(v, w)
  local l, r, ph, ts, td, tr, tf, code = string.match(v, '^(.)(.)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  if not l then return nil end
  return {l = l, r = r, ph = ph, t = {ts, td, tr, tf}, code = code, w = w or ''}
end
-- load reads the record of field f of a bucket: nil when there is none, false when it
-- cannot be read.
local function load(bucket, f)
  local hv = redis.call('HMGET', bucket, f, 'w' .. f)
  if not hv[1] then return nil end
  return parse(hv[1], hv[2]) or false
end
local function fresh() return {l = '-', r = '0', ph = '', t = {'', '', '', ''}, code = '', w = ''} end
local function save(bucket, f, x)
  local head = x.l .. x.r .. '|' .. x.ph .. '|' .. x.t[1] .. '|' .. x.t[2] .. '|' .. x.t[3] .. '|' .. x.t[4] .. '|' .. x.code
  if x.w ~= '' then
    redis.call('HSET', bucket, f, head, 'w' .. f, x.w)
  else
    redis.call('HSET', bucket, f, head)
  end
end
local function contrib(x)
  if x.l ~= 's' then return 0, 0, 0 end
  local d, r, f = 0, 0, 0
  if x.r == '2' or x.r == '3' then d = 1 end
  if x.r == '3' then r = 1 end
  if x.r == '9' then f = 1 end
  return d, r, f
end
local function follow(key, ref)
  local ttl = redis.call('PTTL', ref)
  if ttl > 0 and redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, ttl) end
end
local function bump(meta, d0, r0, f0, x)
  local d1, r1, f1 = contrib(x)
  if d1 ~= d0 then redis.call('HINCRBY', meta, 'delivered', d1 - d0) end
  if r1 ~= r0 then redis.call('HINCRBY', meta, 'read', r1 - r0) end
  if f1 ~= f0 then
    redis.call('HINCRBY', meta, 'failed_after_send', f1 - f0)
    -- The first failures after acceptance are listed in task-status's errors.
    local late = meta .. ':late'
    if f1 > f0 and redis.call('LLEN', late) < 100 then
      redis.call('RPUSH', late, x.idx)
      follow(late, meta)
    end
  end
end
local SLOT = {['1'] = 1, ['2'] = 2, ['3'] = 3, ['9'] = 4}
local RANK = {sent = '1', delivered = '2', read = '3', played = '3', failed = '9'}
-- step applies status rank n seen at time t: its time is kept when first seen; the rank
-- only moves forward; failed is terminal, and a failed after delivered or read is kept
-- as a time only (the message reached the phone).
local function step(x, n, t, code)
  local changed = false
  local i = SLOT[n]
  -- A failed message keeps only its failure's time: nothing after it is shown as news.
  if t ~= '' and x.t[i] == '' and (x.r ~= '9' or n == '9') then x.t[i] = t; changed = true end
  if x.r == '9' then return changed end
  if n == '9' then
    if x.r == '2' or x.r == '3' then return changed end
    x.r = '9'
    if code ~= '' and x.code == '' then x.code = code end
    return true
  end
  if n > x.r then x.r = n; changed = true end
  return changed
end
-- lookup finds the task and recipient index of a wamid in the reverse index.
local function lookup(h8, hbin, today, ndays, prefix)
  local fields = {}
  for d = today, today - ndays, -1 do fields[#fields + 1] = string.format('%d', d) end
  local levels = redis.call('HMGET', prefix .. 'dl:w:days', unpack(fields))
  for i = 1, #fields do
    local lv = levels[i]
    if lv then
      for L = tonumber(lv), 0, -1 do
        local bins = 1024 * math.pow(2, L)
        local v = redis.call('HGET', prefix .. 'dl:w:' .. fields[i] .. ':' .. L .. ':' .. string.format('%d', hbin % bins), h8)
        if v then
          local num, idx = string.match(v, '^(%d+):(%d+)$')
          if num then
            local task = redis.call('GET', prefix .. 'dl:n:' .. num)
            if task then return task, tonumber(idx) end
          end
        end
      end
    end
  end
  return nil
end
local function statusHash(key, st, ts, rcpt, errs, opaque, ttl, wamid)
  local rank = {sent = 1, delivered = 2, read = 3, played = 4, failed = 5}
  redis.call('HSET', key, 'seen:' .. st, ts)
  redis.call('PEXPIRE', key, ttl)
  local cur = redis.call('HGET', key, 'status')
  if cur then
    if cur == 'failed' then return 0 end
    if (rank[st] or 0) <= (rank[cur] or 0) then return 0 end
  end
  redis.call('HSET', key, 'id', wamid, 'status', st, 'timestamp', ts, 'recipient_id', rcpt)
  if errs ~= '' then redis.call('HSET', key, 'errors', errs) end
  if opaque ~= '' then redis.call('HSET', key, 'biz_opaque_callback_data', opaque) end
  return 1
end
`

// deliveryStatusScript applies one status webhook item. KEYS = {status:<wamid>, the
// task's dl, its bucket, its dl:err} (the task named by biz_opaque_callback_data, or
// placeholders). ARGV = {status, timestamp, recipient, errors JSON, opaque, status TTL
// ms, wamid, encoded wamid, rank, time b36, field (” without a task), code, title, hash,
// bin, today, days back, prefix, index}. A status of a recorded message moves its task's record
// (found through its opaque data, else the reverse index); any other is kept under
// status:<wamid> as before, where the ledger's write finds it when the wamid is recorded
// later. It returns 3 when a task's record moved, 2 when the record already had it, 1 or
// 0 when status:<wamid> advanced or not.
var deliveryStatusScript = redis.NewScript(deliveryLua + `
local function track(meta, bucket, errs, field, idx)
  local x = load(bucket, field)
  local v = x
  if x == false then return nil end
  if x then
    if x.w ~= '' and x.w ~= ARGV[8] then return nil end
  else
    x = fresh()
    x.ph = ARGV[3]
  end
  if x.w == '' then x.w = ARGV[8] end
  x.idx = idx
  local d0, r0, f0 = contrib(x)
  local changed = step(x, ARGV[9], ARGV[10], ARGV[12])
  if v and not changed then return 2 end
  save(bucket, field, x)
  follow(bucket, meta)
  bump(meta, d0, r0, f0, x)
  if ARGV[9] == '9' and ARGV[12] ~= '' and ARGV[13] ~= '' then
    redis.call('HSETNX', errs, ARGV[12], ARGV[13])
    follow(errs, meta)
  end
  return 3
end
local function tally(r)
  local names = {[0] = 'kept', [1] = 'kept', [2] = 'repeated', [3] = 'counted'}
  redis.call('HINCRBY', ARGV[18] .. 'dl:stats', 'statuses_' .. names[r], 1)
  return r
end
if ARGV[9] ~= '' then
  if ARGV[11] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
    local r = track(KEYS[2], KEYS[3], KEYS[4], ARGV[11], ARGV[19])
    if r then return tally(r) end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    local task, idx = lookup(ARGV[14], tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), ARGV[18])
    if task then
      local base = ARGV[18] .. 'task:' .. task .. ':dl'
      if redis.call('EXISTS', base) == 1 then
        local r = track(base, base .. ':' .. math.floor(idx / 50), base .. ':err', tostring(idx % 50), tostring(idx))
        if r then return tally(r) end
      end
    end
  end
end
return tally(statusHash(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]))
`)

// deliveryLookupScript finds a wamid: {"status"} when status:<wamid> holds it (a direct
// send, a status not tied to a task yet, or one wagate did not send), {"task", id,
// index, record} when a task recorded it, {} when unknown. KEYS = {status:<wamid>}, ARGV
// = {hash, bin, today, days back, prefix, encoded wamid}.
var deliveryLookupScript = redis.NewScript(deliveryLua + `
if redis.call('EXISTS', KEYS[1]) == 1 then return {'status'} end
local task, idx = lookup(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
if not task then return {} end
local f = tostring(idx % 50)
local hv = redis.call('HMGET', ARGV[5] .. 'task:' .. task .. ':dl:' .. math.floor(idx / 50), f, 'w' .. f)
if not hv[1] then return {} end
local x = parse(hv[1], hv[2])
if not x or x.w ~= ARGV[6] then return {} end
return {'task', task, tostring(idx), hv[1], hv[2] or ''}
`)

// trackRecordLua is the ledger write's part of delivery tracking, run in the same script
// as the ledger write (ledger.go) right after it wrote a final outcome. Extra KEYS (from
// 4): the task's dl, the recipient's dl bucket, status:<wamid>, dl:err, dl:seq; extra
// ARGV (from 6): index, task id, ledger char, phone, encoded wamid, now b36, code, error
// text, hash, bin, today, index expiry (Unix ms), prefix, wamid.
const trackRecordLua = deliveryLua + `
local function trackRecord()
  -- The TTL of what this write creates is the staged messages' (read once, when needed).
  local ttl = nil
  local function life()
    if not ttl then
      ttl = redis.call('PTTL', KEYS[3])
      if ttl <= 0 then ttl = tonumber(ARGV[3]) end
    end
    return ttl
  end
  local meta, bucket, pend, errs = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
  local prefix = ARGV[18]
  local num = redis.call('HGET', meta, 'num')
  if not num then
    -- The task's first write: meta gets its number and its TTL, which later writes
    -- keep.
    num = tostring(redis.call('INCR', KEYS[8]))
    redis.call('HSET', meta, 'num', num)
    redis.call('SET', prefix .. 'dl:n:' .. num, ARGV[7], 'PX', life())
    if redis.call('PTTL', meta) == -1 then redis.call('PEXPIRE', meta, life()) end
  end
  local function keepErrs()
    if redis.call('PTTL', errs) == -1 then redis.call('PEXPIRE', errs, life()) end
  end
  local phone = ARGV[9]
  if phone == '' then
    local m = redis.call('LINDEX', KEYS[3], ARGV[6])
    if m then
      local ok, dec = pcall(cjson.decode, m)
      if ok and type(dec) == 'table' and type(dec.to) == 'string' then phone = dec.to end
    end
  end
  local f = tostring(tonumber(ARGV[6]) % 50)
  local x = load(bucket, f)
  if not x then x = fresh() end
  x.idx = ARGV[6]
  local d0, r0, f0 = contrib(x)
  x.l = ARGV[8]
  if x.ph == '' then x.ph = phone end
  if ARGV[8] == 's' then
    if x.w == '' then x.w = ARGV[10] end
    if x.t[1] == '' then x.t[1] = ARGV[11] end
    if x.w == ARGV[10] and redis.call('EXISTS', pend) == 1 then
      -- Statuses that arrived before this write, kept under status:<wamid>: applied in
      -- rank order, then forgotten there (the record holds them now).
      local h = redis.call('HGETALL', pend)
      local seen, code, title = {}, '', ''
      for i = 1, #h, 2 do
        local st = string.match(h[i], '^seen:(.+)$')
        if st then seen[st] = h[i + 1] end
        if h[i] == 'errors' then
          local ok, e = pcall(cjson.decode, h[i + 1])
          if ok and type(e) == 'table' and type(e[1]) == 'table' then
            if e[1].code then code = tostring(e[1].code) end
            if type(e[1].title) == 'string' then title = e[1].title end
          end
        end
      end
      for _, st in ipairs({'sent', 'delivered', 'read', 'played', 'failed'}) do
        if seen[st] then
          local t = ''
          local n = tonumber(seen[st])
          if n then t = b36(n - EPOCH) end
          step(x, RANK[st], t, code)
        end
      end
      if x.r == '9' and code ~= '' and title ~= '' then
        redis.call('HSETNX', errs, code, title)
        keepErrs()
      end
      redis.call('DEL', pend)
    end
  else
    if x.code == '' then x.code = ARGV[12] end
    if x.t[4] == '' then x.t[4] = ARGV[11] end
    if ARGV[12] ~= '' and ARGV[13] ~= '' then
      redis.call('HSETNX', errs, ARGV[12], ARGV[13])
      keepErrs()
    end
  end
  save(bucket, f, x)
  if redis.call('PTTL', bucket) == -1 then redis.call('PEXPIRE', bucket, life()) end
  bump(meta, d0, r0, f0, x)
  redis.call('HINCRBY', prefix .. 'dl:stats', 'recipients_recorded', 1)
  if ARGV[8] == 's' and ARGV[14] ~= '' then
    local days = prefix .. 'dl:w:days'
    local today = ARGV[16]
    local L = tonumber(redis.call('HGET', days, today) or '-1')
    if L < 0 then
      L = 0
      redis.call('HSET', days, today, 0, today .. ':n', 0)
    end
    local n = redis.call('HINCRBY', days, today .. ':n', 1)
    if n > 80 * 1024 * math.pow(2, L) then
      L = L + 1
      redis.call('HSET', days, today, L, today .. ':n', 1)
    end
    local bin = prefix .. 'dl:w:' .. today .. ':' .. L .. ':' .. string.format('%d', tonumber(ARGV[15]) % (1024 * math.pow(2, L)))
    redis.call('HSET', bin, ARGV[14], num .. ':' .. ARGV[6])
    if redis.call('PTTL', bin) == -1 then redis.call('PEXPIREAT', bin, ARGV[17]) end
  end
end
`

// trackArgs are the extra KEYS and ARGV of trackRecordLua for a final ledger entry.
func (s *Store) trackArgs(taskID string, index int, e LedgerEntry) ([]string, []any) {
	ttl := s.deliveryTTL()
	now := time.Now()
	today := now.Unix() / int64(day/time.Second)
	statusKey := s.statusKey("-")
	l, code, text := "s", "", ""
	var h8 string
	var hbin uint32
	if e.State == LedgerSent {
		statusKey = s.statusKey(e.WAMID)
		h8, hbin = wamidHash(e.WAMID)
	} else {
		l, text = "f", e.Error
		code = strconv.Itoa(e.Code)
		if text == "" {
			text = "error"
		}
	}
	expire := (today+1)*int64(day/time.Millisecond) + ttl.Milliseconds()
	keys := []string{s.dlMetaKey(taskID), s.dlBucketKey(taskID, index/dlBucket), statusKey, s.dlErrKey(taskID), s.key("dl", "seq")}
	args := []any{index, taskID, l, e.Phone, encodeWAMID(e.WAMID), b36(now.Unix() - deliveryEpoch), code, text,
		h8, hbin, today, expire, s.prefix, e.WAMID}
	return keys, args
}

// wamidHash is the reverse index's field for a wamid (8 bytes of FNV-1a) and the number
// its bin is chosen from.
func wamidHash(wamid string) (string, uint32) {
	h := fnv.New64a()
	h.Write([]byte(wamid))
	sum := h.Sum64()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], sum)
	return string(b[:]), uint32(sum)
}

// encodeWAMID stores Meta's "wamid.<base64>" as its raw bytes, anything else as text.
func encodeWAMID(w string) string {
	if w == "" {
		return ""
	}
	if rest, ok := strings.CutPrefix(w, "wamid."); ok {
		if raw, err := base64.StdEncoding.DecodeString(rest); err == nil && base64.StdEncoding.EncodeToString(raw) == rest {
			return "~" + string(raw)
		}
	}
	return "=" + w
}

func decodeWAMID(v string) string {
	switch {
	case strings.HasPrefix(v, "~"):
		return "wamid." + base64.StdEncoding.EncodeToString([]byte(v[1:]))
	case strings.HasPrefix(v, "="):
		return v[1:]
	}
	return v
}

func b36(n int64) string {
	if n < 0 {
		n = 0
	}
	return strconv.FormatInt(n, 36)
}

// statusRank is the record's rank of a status webhook's status, "" for statuses that do
// not move a message (Meta may add some).
func statusRank(st string) string {
	switch st {
	case shared.DeliverySent:
		return "1"
	case shared.DeliveryDelivered:
		return "2"
	case shared.DeliveryRead, shared.DeliveryPlayed:
		return "3"
	case shared.DeliveryFailed:
		return "9"
	}
	return ""
}

// firstError reads the code and title of a failed status's errors[0].
func firstError(raw json.RawMessage) (string, string) {
	var errs []struct {
		Code  json.Number `json:"code"`
		Title string      `json:"title"`
		Msg   string      `json:"message"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &errs) != nil || len(errs) == 0 {
		return "", ""
	}
	title := errs[0].Title
	if title == "" {
		title = errs[0].Msg
	}
	return errs[0].Code.String(), title
}

// opaqueRecipient reads the biz_opaque_callback_data wagate sends with each recipient of
// a task, "<task id>:<index>".
func opaqueRecipient(opaque string) (string, int, bool) {
	i := strings.LastIndexByte(opaque, ':')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(opaque[i+1:])
	if err != nil || n < 0 || strconv.Itoa(n) != opaque[i+1:] {
		return "", 0, false
	}
	return opaque[:i], n, true
}

func (s *Store) statusArgs(st shared.DeliveryStatus) ([]string, []any) {
	now := time.Now()
	today := now.Unix() / int64(day/time.Second)
	ndays := int64(s.deliveryTTL()/day) + 1
	keys := []string{s.statusKey(st.ID), s.statusKey("-"), s.statusKey("-"), s.statusKey("-")}
	field, index := "", ""
	if task, idx, ok := opaqueRecipient(st.BizOpaqueCallbackData); ok {
		keys[1], keys[2], keys[3] = s.dlMetaKey(task), s.dlBucketKey(task, idx/dlBucket), s.dlErrKey(task)
		field, index = strconv.Itoa(idx%dlBucket), strconv.Itoa(idx)
	}
	t := ""
	if sec, err := strconv.ParseInt(st.Timestamp, 10, 64); err == nil {
		t = b36(sec - deliveryEpoch)
	}
	code, title := "", ""
	if st.Status == shared.DeliveryFailed {
		code, title = firstError(st.Errors)
		if len(title) > maxErrorTitle {
			title = title[:maxErrorTitle]
		}
	}
	h8, hbin := wamidHash(st.ID)
	args := []any{st.Status, st.Timestamp, st.RecipientID, string(st.Errors), st.BizOpaqueCallbackData,
		StatusTTL.Milliseconds(), st.ID, encodeWAMID(st.ID), statusRank(st.Status), t, field, code, title,
		h8, hbin, today, ndays, s.prefix, index}
	return keys, args
}

// maxErrorTitle bounds an error title kept per task and code.
const maxErrorTitle = 200

// StatusOutcome says where ApplyStatuses put one status.
type StatusOutcome int

// Outcomes of one status.
const (
	StatusKept     StatusOutcome = iota // kept under status:<wamid>, nothing moved
	StatusAdvanced                      // status:<wamid> moved forward
	StatusTracked                       // already in its task's record (a repeat, or late)
	StatusCounted                       // moved its task's record
)

var statusScriptLoaded sync.Map // *redis.Client -> struct{} once the scripts are loaded

// ApplyStatuses applies status webhook items in order, in one Redis round trip. A
// status of a message a task recorded moves that task's record monotonically (sent <
// delivered < read, failed terminal; a failed after delivered or read is kept as a time
// only) and the task's delivered, read and failed_after_send counters, each recipient
// counted once whatever the repeats and the order; any other status is kept under
// status:<wamid> (monotonically, every status in seen:<status>), where the ledger write of
// a wamid recorded later finds it.
func (s *Store) ApplyStatuses(ctx context.Context, sts []shared.DeliveryStatus) ([]StatusOutcome, error) {
	out := make([]StatusOutcome, len(sts))
	if len(sts) == 0 {
		return out, nil
	}
	if _, ok := statusScriptLoaded.Load(s.rdb); !ok {
		if err := deliveryStatusScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, fmt.Errorf("redis: load status script: %w", err)
		}
		statusScriptLoaded.Store(s.rdb, struct{}{})
	}
	for try := 0; ; try++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(sts))
		for i, st := range sts {
			keys, args := s.statusArgs(st)
			cmds[i] = deliveryStatusScript.EvalSha(ctx, pipe, keys, args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			// Redis restarted or was flushed: load again; applying a status twice is harmless.
			if err := deliveryStatusScript.Load(ctx, s.rdb).Err(); err != nil {
				return nil, fmt.Errorf("redis: load status script: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redis: apply %d statuses: %w", len(sts), err)
		}
		for i, c := range cmds {
			n, _ := c.Int()
			out[i] = StatusOutcome(n)
		}
		return out, nil
	}
}

// ApplyStatus records one status webhook item (see ApplyStatuses). It reports whether
// the item moved the message's status forward.
func (s *Store) ApplyStatus(ctx context.Context, st shared.DeliveryStatus) (bool, error) {
	keys, args := s.statusArgs(st)
	n, err := deliveryStatusScript.Run(ctx, s.rdb, keys, args...).Int()
	if err != nil {
		return false, fmt.Errorf("redis: apply status %s %s: %w", st.ID, st.Status, err)
	}
	return n == int(StatusAdvanced) || n == int(StatusCounted), nil
}

// RecordDirect notes that wagate sent wamid to phone itself, outside any task (a direct
// send, use_queue false), so that GET /api/messages/{wamid} knows it as wagate's.
func (s *Store) RecordDirect(ctx context.Context, wamid, phone string, at time.Time) error {
	key := s.statusKey(wamid)
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, key, "source", "direct", "accepted_at", strconv.FormatInt(at.Unix(), 10), "to", phone)
	pipe.PExpire(ctx, key, StatusTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: record direct send %s: %w", wamid, err)
	}
	return nil
}

// DeliveryCounts are a task's counters of status webhooks: recipients whose message
// Meta accepted and then reported delivered (read included: Meta may skip delivered),
// read, and failed after it was accepted.
type DeliveryCounts struct {
	Delivered       int `json:"delivered"`
	Read            int `json:"read"`
	FailedAfterSend int `json:"failed_after_send"`
}

// Delivery returns a task's delivery counters; zeros when none is kept.
func (s *Store) Delivery(ctx context.Context, taskID string) (DeliveryCounts, error) {
	vals, err := s.rdb.HMGet(ctx, s.dlMetaKey(taskID), "delivered", "read", "failed_after_send").Result()
	if err != nil {
		return DeliveryCounts{}, fmt.Errorf("redis: delivery of task %s: %w", taskID, err)
	}
	n := make([]int, 3)
	for i, v := range vals {
		if str, ok := v.(string); ok {
			n[i], _ = strconv.Atoi(str)
		}
	}
	return DeliveryCounts{Delivered: n[0], Read: n[1], FailedAfterSend: n[2]}, nil
}

// KeepDelivery sets the TTL of a finished task's delivery records (its dl hash, every
// bucket, its error titles and its task number), so that they last as long as its
// summary, which status webhooks keep moving.
func (s *Store) KeepDelivery(ctx context.Context, taskID string, total int, ttl time.Duration) error {
	meta := s.dlMetaKey(taskID)
	num, err := s.rdb.HGet(ctx, meta, "num").Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("redis: keep delivery of task %s: %w", taskID, err)
	}
	pipe := s.rdb.Pipeline()
	for b := 0; b*dlBucket < total; b++ {
		pipe.PExpire(ctx, s.dlBucketKey(taskID, b), ttl)
	}
	pipe.PExpire(ctx, s.dlErrKey(taskID), ttl)
	pipe.PExpire(ctx, meta+":late", ttl)
	pipe.PExpire(ctx, s.key("dl", "n", num), ttl)
	pipe.PExpire(ctx, meta, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: keep delivery of task %s: %w", taskID, err)
	}
	return nil
}

// RecipientRow is one recipient of a task in the delivery listing.
type RecipientRow struct {
	Index       int        `json:"index"`
	Phone       string     `json:"phone"`
	WAMID       string     `json:"wamid"`
	Status      string     `json:"status"`
	ErrorCode   int        `json:"error_code,omitempty"`
	Error       string     `json:"error,omitempty"`
	SentAt      *time.Time `json:"sent_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
	ReadAt      *time.Time `json:"read_at"`
	FailedAt    *time.Time `json:"failed_at"`
}

func parseTime36(v string) *time.Time {
	if v == "" {
		return nil
	}
	n, err := strconv.ParseInt(v, 36, 64)
	if err != nil {
		return nil
	}
	t := time.Unix(n+deliveryEpoch, 0).UTC()
	return &t
}

// decodeRecord reads one record (its head and its wamid field) into a row, without its
// error text.
func decodeRecord(index int, head, wamid string) (RecipientRow, error) {
	parts := strings.Split(head, "|")
	if len(parts) != 7 || len(parts[0]) != 2 {
		return RecipientRow{}, fmt.Errorf("malformed delivery record %q", head)
	}
	l, r := parts[0][0], parts[0][1]
	row := RecipientRow{Index: index, Phone: parts[1], WAMID: decodeWAMID(wamid),
		SentAt: parseTime36(parts[2]), DeliveredAt: parseTime36(parts[3]), ReadAt: parseTime36(parts[4]), FailedAt: parseTime36(parts[5])}
	row.ErrorCode, _ = strconv.Atoi(parts[6])
	switch {
	case l == 'f' || r == '9':
		row.Status = RecipientFailed
	case r == '3':
		row.Status = RecipientRead
	case r == '2':
		row.Status = RecipientDelivered
	case l == 's' || r == '1':
		row.Status = RecipientSent
	default:
		row.Status = RecipientPending
	}
	return row, nil
}

// ErrorTitles returns the error texts of a task by code ("0" for failures without one).
func (s *Store) ErrorTitles(ctx context.Context, taskID string) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.dlErrKey(taskID)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: error titles of task %s: %w", taskID, err)
	}
	return m, nil
}

// Recipients returns the rows of recipients [offset, offset+count) of a task, in index
// order, in one round trip (plus one for the phones of recipients without a record, while
// the task's messages are staged). Recipients without a record are pending.
func (s *Store) Recipients(ctx context.Context, taskID string, offset, count int, titles map[string]string) ([]RecipientRow, error) {
	if offset < 0 || count < 0 {
		return nil, fmt.Errorf("redis: recipients of task %s: bad range offset=%d count=%d", taskID, offset, count)
	}
	out := make([]RecipientRow, 0, count)
	if count == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	var cmds []*redis.SliceCmd
	for i := offset; i < offset+count; {
		b := i / dlBucket
		end := min((b+1)*dlBucket, offset+count)
		fields := make([]string, 0, 2*(end-i))
		for j := i; j < end; j++ {
			f := strconv.Itoa(j % dlBucket)
			fields = append(fields, f, "w"+f)
		}
		cmds = append(cmds, pipe.HMGet(ctx, s.dlBucketKey(taskID, b), fields...))
		i = end
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redis: recipients of task %s: %w", taskID, err)
	}
	missing := false
	i := offset
	for _, c := range cmds {
		vals := c.Val()
		for k := 0; k+1 < len(vals); k += 2 {
			row := RecipientRow{Index: i, Status: RecipientPending}
			if head, ok := vals[k].(string); ok {
				w, _ := vals[k+1].(string)
				var err error
				if row, err = decodeRecord(i, head, w); err != nil {
					return nil, fmt.Errorf("redis: recipients of task %s, recipient %d: %w", taskID, i, err)
				}
				if row.Status == RecipientFailed {
					row.Error = titles[strconv.Itoa(row.ErrorCode)]
				}
			}
			if row.Phone == "" {
				missing = true
			}
			out = append(out, row)
			i++
		}
	}
	if missing {
		// Not recorded yet: the phone comes from the staged messages, while they last.
		if msgs, err := s.LoadMessages(ctx, taskID, offset, count); err == nil {
			for j := range out {
				if out[j].Phone == "" && j < len(msgs) {
					out[j].Phone = msgs[j].To
				}
			}
		}
	}
	return out, nil
}

// MessageTimeline is what wagate knows of one outbound message.
type MessageTimeline struct {
	WAMID string `json:"wamid"`
	// Source is "task" (a recipient of a task, queued single sends included), "direct"
	// (a send with use_queue false) or "unknown" (status webhooks of a message wagate did
	// not record sending).
	Source string `json:"source"`
	TaskID string `json:"task_id,omitempty"`
	Index  *int   `json:"index,omitempty"`
	Phone  string `json:"phone"`
	Status string `json:"status"`
	// Timeline lists each status seen, with Meta's time, in status order.
	Timeline []TimelineEntry `json:"timeline"`
	Error    *StatusError    `json:"error"`
}

// TimelineEntry is one status of a message and when Meta reported it.
type TimelineEntry struct {
	Status    string    `json:"status"`
	Timestamp time.Time `json:"timestamp"`
}

// StatusError is Meta's reason for a failed message.
type StatusError struct {
	Code  int    `json:"code"`
	Title string `json:"title"`
}

// Message returns the timeline of wamid, or shared.ErrNotFound when wagate knows
// nothing of it.
func (s *Store) Message(ctx context.Context, wamid string) (MessageTimeline, error) {
	h8, hbin := wamidHash(wamid)
	today := time.Now().Unix() / int64(day/time.Second)
	ndays := int64(s.deliveryTTL()/day) + 1
	res, err := deliveryLookupScript.Run(ctx, s.rdb, []string{s.statusKey(wamid)},
		h8, hbin, today, ndays, s.prefix, encodeWAMID(wamid)).StringSlice()
	if err != nil {
		return MessageTimeline{}, fmt.Errorf("redis: message %s: %w", wamid, err)
	}
	switch {
	case len(res) == 5 && res[0] == "task":
		idx, _ := strconv.Atoi(res[2])
		row, err := decodeRecord(idx, res[3], res[4])
		if err != nil {
			return MessageTimeline{}, fmt.Errorf("redis: message %s: %w", wamid, err)
		}
		m := MessageTimeline{WAMID: wamid, Source: "task", TaskID: res[1], Index: &idx, Phone: row.Phone, Status: row.Status}
		if m.Status == RecipientPending {
			m.Status = RecipientSent
		}
		for _, e := range []struct {
			st string
			t  *time.Time
		}{{shared.DeliverySent, row.SentAt}, {shared.DeliveryDelivered, row.DeliveredAt},
			{shared.DeliveryRead, row.ReadAt}, {shared.DeliveryFailed, row.FailedAt}} {
			if e.t != nil {
				m.Timeline = append(m.Timeline, TimelineEntry{Status: e.st, Timestamp: *e.t})
			}
		}
		if row.Status == RecipientFailed {
			titles, _ := s.ErrorTitles(ctx, res[1])
			m.Error = &StatusError{Code: row.ErrorCode, Title: titles[strconv.Itoa(row.ErrorCode)]}
		}
		if m.Timeline == nil {
			m.Timeline = []TimelineEntry{}
		}
		return m, nil
	case len(res) == 1 && res[0] == "status":
		return s.statusTimeline(ctx, wamid)
	}
	return MessageTimeline{}, fmt.Errorf("redis: message %s: %w", wamid, shared.ErrNotFound)
}

func (s *Store) statusTimeline(ctx context.Context, wamid string) (MessageTimeline, error) {
	h, err := s.rdb.HGetAll(ctx, s.statusKey(wamid)).Result()
	if err != nil {
		return MessageTimeline{}, fmt.Errorf("redis: message %s: %w", wamid, err)
	}
	if len(h) == 0 {
		return MessageTimeline{}, fmt.Errorf("redis: message %s: %w", wamid, shared.ErrNotFound)
	}
	m := MessageTimeline{WAMID: wamid, Source: "unknown", Phone: h["recipient_id"], Status: h["status"], Timeline: []TimelineEntry{}}
	if h["source"] == "direct" {
		m.Source = "direct"
		if m.Phone == "" {
			m.Phone = h["to"]
		}
		if m.Status == "" {
			m.Status = RecipientSent
		}
		if sec, err := strconv.ParseInt(h["accepted_at"], 10, 64); err == nil {
			m.Timeline = append(m.Timeline, TimelineEntry{Status: "accepted", Timestamp: time.Unix(sec, 0).UTC()})
		}
	}
	for _, st := range []string{shared.DeliverySent, shared.DeliveryDelivered, shared.DeliveryRead, shared.DeliveryPlayed, shared.DeliveryFailed} {
		if sec, err := strconv.ParseInt(h["seen:"+st], 10, 64); err == nil {
			m.Timeline = append(m.Timeline, TimelineEntry{Status: st, Timestamp: time.Unix(sec, 0).UTC()})
		}
	}
	if m.Status == shared.DeliveryFailed {
		code, title := firstError(json.RawMessage(h["errors"]))
		n, _ := strconv.Atoi(code)
		m.Error = &StatusError{Code: n, Title: title}
	}
	return m, nil
}

// LateFailures returns the first 100 recipients of a task that Meta accepted and then
// reported failed, with Meta's code and title.
func (s *Store) LateFailures(ctx context.Context, taskID string) ([]shared.RecipientError, error) {
	idx, err := s.rdb.LRange(ctx, s.dlMetaKey(taskID)+":late", 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: late failures of task %s: %w", taskID, err)
	}
	if len(idx) == 0 {
		return nil, nil
	}
	titles, err := s.ErrorTitles(ctx, taskID)
	if err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(idx))
	nums := make([]int, len(idx))
	for i, v := range idx {
		nums[i], _ = strconv.Atoi(v)
		f := strconv.Itoa(nums[i] % dlBucket)
		cmds[i] = pipe.HMGet(ctx, s.dlBucketKey(taskID, nums[i]/dlBucket), f, "w"+f)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis: late failures of task %s: %w", taskID, err)
	}
	out := make([]shared.RecipientError, 0, len(idx))
	for i, c := range cmds {
		v := c.Val()
		head, _ := v[0].(string)
		w, _ := v[1].(string)
		row, err := decodeRecord(nums[i], head, w)
		if err != nil {
			continue
		}
		title := titles[strconv.Itoa(row.ErrorCode)]
		if title == "" {
			title = "failed after it was sent"
		}
		out = append(out, shared.RecipientError{Index: nums[i], Phone: row.Phone, Code: row.ErrorCode, Error: title})
	}
	return out, nil
}

// MetaLikeWAMID builds a wamid shaped like Meta's (and the sandbox's): "wamid." and the
// base64 of a protobuf-like record of the recipient and a unique id, 62 characters for a
// 12-digit phone. Tests and the benchmark measure with it.
func MetaLikeWAMID(phone string, id uint64) string {
	raw := fmt.Sprintf("\x1c\x18%c%s\x15\x02\x00\x11\x18\x12%018X\x00", byte(len(phone)), phone, id)
	return "wamid." + base64.StdEncoding.EncodeToString([]byte(raw))
}

// MeasureDeliveryMemory records n recipients of taskID as sent (Meta-like wamids and
// phones), applies to them the status webhooks of a typical campaign (sent for all,
// delivered for 90%, read for 60%, failed for 3%), and returns what delivery tracking
// then holds in Redis per recipient: MEMORY USAGE of the task's records, counters and
// error titles, plus the wamid index under the store's prefix (so the prefix should hold
// nothing else). The ledger and the staged messages, which expire an hour after the task,
// are not counted.
func MeasureDeliveryMemory(ctx context.Context, s *Store, taskID string, n int) (float64, error) {
	const workers = 16
	base := time.Now().Unix() - 3600
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var batch []shared.DeliveryStatus
			flush := func() error {
				_, err := s.ApplyStatuses(ctx, batch)
				batch = batch[:0]
				return err
			}
			for i := w; i < n; i += workers {
				phone := fmt.Sprintf("57310%07d", i)
				wamid := MetaLikeWAMID(phone, uint64(i)*2654435761)
				if _, err := s.Record(ctx, taskID, i, LedgerEntry{State: LedgerSent, WAMID: wamid, Phone: phone}); err != nil {
					errc <- err
					return
				}
				st := func(status string, dt int64) shared.DeliveryStatus {
					d := shared.DeliveryStatus{ID: wamid, Status: status, Timestamp: strconv.FormatInt(base+int64(i/100)+dt, 10),
						RecipientID: phone, BizOpaqueCallbackData: taskID + ":" + strconv.Itoa(i)}
					if status == shared.DeliveryFailed {
						d.Errors = json.RawMessage(`[{"code":131026,"title":"Message undeliverable."}]`)
					}
					return d
				}
				batch = append(batch, st(shared.DeliverySent, 1))
				switch {
				case i%100 < 3:
					batch = append(batch, st(shared.DeliveryFailed, 4))
				case i%10 < 9:
					batch = append(batch, st(shared.DeliveryDelivered, 3))
					if i%10 < 6 {
						batch = append(batch, st(shared.DeliveryRead, 60))
					}
				}
				if len(batch) >= 200 {
					if err := flush(); err != nil {
						errc <- err
						return
					}
				}
			}
			if err := flush(); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	keys := []string{s.dlMetaKey(taskID), s.dlErrKey(taskID), s.dlMetaKey(taskID) + ":late"}
	for b := 0; b*dlBucket < n; b++ {
		keys = append(keys, s.dlBucketKey(taskID, b))
	}
	iter := s.rdb.Scan(ctx, 0, s.key("dl")+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	var total int64
	for start := 0; start < len(keys); start += 1000 {
		pipe := s.rdb.Pipeline()
		var cmds []*redis.IntCmd
		for _, k := range keys[start:min(start+1000, len(keys))] {
			cmds = append(cmds, pipe.MemoryUsage(ctx, k, 0))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, err
		}
		for _, c := range cmds {
			total += c.Val()
		}
	}
	return float64(total) / float64(n), nil
}

// TrackingStats are delivery tracking's totals since Redis was set up: recipients
// recorded, and status webhook items counted on a task, repeated (already in their task's
// record) or kept under status:<wamid> (direct sends, statuses of messages not recorded
// yet, and messages wagate did not send).
type TrackingStats struct {
	RecipientsRecorded int64 `json:"recipients_recorded"`
	StatusesCounted    int64 `json:"statuses_counted"`
	StatusesRepeated   int64 `json:"statuses_repeated"`
	StatusesKept       int64 `json:"statuses_kept"`
}

// Tracking returns delivery tracking's totals.
func (s *Store) Tracking(ctx context.Context) (TrackingStats, error) {
	vals, err := s.rdb.HMGet(ctx, s.key("dl", "stats"), "recipients_recorded", "statuses_counted", "statuses_repeated", "statuses_kept").Result()
	if err != nil {
		return TrackingStats{}, fmt.Errorf("redis: tracking stats: %w", err)
	}
	n := make([]int64, 4)
	for i, v := range vals {
		if str, ok := v.(string); ok {
			n[i], _ = strconv.ParseInt(str, 10, 64)
		}
	}
	return TrackingStats{RecipientsRecorded: n[0], StatusesCounted: n[1], StatusesRepeated: n[2], StatusesKept: n[3]}, nil
}
