// Why an app's queued instances wait, with the CLI's logic (paddock app status): while the
// launch is delayed (backoff after failures) the last task failure is the reason; otherwise
// the offers the scheduler declined, per reason. Pure functions of a /v2/queue entry and the
// app's lastTaskFailure, used by app.js's apps table and "Waiting instances" list. They
// return plain text: callers put it in text nodes, never in HTML.
export const REASON_TEXT = {
  UnfulfilledRole: "role not offered",
  UnfulfilledConstraint: "constraint not met",
  NoCorrespondingReservationFound: "no matching reservation",
  AgentMaintenance: "agent in maintenance",
  InsufficientCpus: "insufficient cpus",
  InsufficientMemory: "insufficient mem",
  InsufficientDisk: "insufficient disk",
  InsufficientGpus: "insufficient gpus",
  InsufficientPorts: "insufficient ports",
  DeclinedScarceResources: "declined scarce resources",
};
const FAILURE_TEXT_LIMIT = 300;

// Seconds of launch delay left, counted down from when the queue was fetched.
export function backoffLeft(q, fetchedAt, now = Date.now()) {
  const d = q.delay || {};
  const left = Number(d.timeLeftSeconds) || 0;
  if (d.overdue !== false && left <= 0) return 0;
  const elapsed = fetchedAt ? (now - fetchedAt) / 1000 : 0;
  return Math.max(0, Math.ceil(left - elapsed));
}

export function inBackoff(q) {
  const d = q.delay || {};
  return d.overdue === false || (Number(d.timeLeftSeconds) || 0) > 0;
}

export function declinedReasons(q) {
  const s = q.processedOffersSummary || {};
  const pick = (rows) => (rows || []).filter((r) => r.declined > 0);
  let rows = pick(s.rejectSummaryLastOffers);
  if (!rows.length) rows = pick(s.rejectSummaryLaunchAttempt);
  return rows.map((r) => ({ reason: r.reason, declined: r.declined,
    text: `${REASON_TEXT[r.reason] ?? r.reason} (${r.reason}): ${r.declined} offer(s) declined` }));
}

export function failureText(f) {
  let message = String(f.message ?? "").split(/\s+/).filter(Boolean).join(" ");
  if (message.length > FAILURE_TEXT_LIMIT) message = message.slice(0, FAILURE_TEXT_LIMIT - 1) + "…";
  return `after ${f.state || "a failure"}` + (message ? `: ${message}` : "");
}

// failure: the app's lastTaskFailure (or null); fetchedAt: Date.now() of the queue's answer.
export function waitReason(q, failure, fetchedAt, now = Date.now()) {
  if (inBackoff(q)) {
    const backoff = `backoff ${backoffLeft(q, fetchedAt, now)}s`;
    if (failure) return `${backoff} ${failureText(failure)}`;
    const declined = declinedReasons(q);
    return declined.length ? `${backoff}; offers declined: ${declined.map((d) => d.text).join("; ")}` : backoff;
  }
  const declined = declinedReasons(q);
  if (declined.length) return `offers declined: ${declined.map((d) => d.text).join("; ")}`;
  if (!(q.processedOffersSummary?.processedOffersCount > 0)) return "no offers yet";
  return "waiting for a matching offer";
}

