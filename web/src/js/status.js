// Status values (spec/METRICS.md) and how they look.

export const RUN_STATUSES = ['pending', 'submitted', 'provisioning', 'running', 'terminating',
                             'terminated', 'failed', 'done'];
const FINAL = new Set(['terminated', 'failed', 'done', 'aborted']);

// Whether a run or job status is final: nothing changes any more.
export function isFinal(status) {
  return FINAL.has(status);
}

// The colour family of a status: ok (running, idle), busy, wait (queued or starting), stop
// (winding down), done, bad (failed), off (terminated, aborted).
export function tone(status) {
  switch (status) {
    case 'running':
    case 'active':
    case 'idle':
      return 'ok';
    case 'busy':
      return 'busy';
    case 'pending':
    case 'submitted':
    case 'provisioning':
    case 'pulling':
      return 'wait';
    case 'terminating':
      return 'stop';
    case 'done':
      return 'done';
    case 'failed':
      return 'bad';
    default:
      return 'off';
  }
}

// A termination reason in words, as the CLI words it: "no capacity", "stopped by user".
export function terminationReasonText(reason) {
  switch (reason) {
    case 'failed_to_start_due_to_no_capacity':
      return 'no capacity';
    case 'interrupted_by_no_capacity':
      return 'interrupted: no capacity';
    case 'container_exited_with_error':
      return 'exited with an error';
    case 'terminated_by_user':
    case 'stopped_by_user':
      return 'stopped by user';
    case 'max_duration_exceeded':
      return 'max duration';
    default:
      return typeof reason === 'string' ? reason.replace(/_/g, ' ') : '';
  }
}

function text(value) {
  return typeof value === 'string' ? value : '';
}

// The words in brackets for a job that ended: a failed job's exit code when not 0, else its
// reason ("stopped by user" says more than the exit code 143 that the stop caused).
function jobReasonWords(job) {
  const reason = text(job.termination_reason);
  const words = reason === '' || reason === 'done_by_runner' ? '' : terminationReasonText(reason);
  const code = job.exit_code;
  const exit = Number.isInteger(code) && code !== 0 ? `exit ${code}` : '';
  return job.status === 'failed' ? exit || words : words || exit;
}

function composed(status, words) {
  return words ? `${status} (${words})` : status;
}

// Why a run or job is in its status, in one text: "failed (exit 3)", "terminated (max duration
// 20s)", "submitted (waiting: 0 of 1 CPUs free on local)". The API's `status_message` when it
// sends one; otherwise composed from `status`, `termination_reason` and `exit_code` in the CLI's
// words (a failed run says why its failed job failed). Plain text: callers put it in text nodes.
export function statusMessage(item) {
  if (!item || typeof item !== 'object') return '';
  const own = text(item.status_message).trim();
  if (own) return own;
  const status = text(item.status) || 'unknown';
  if (!Array.isArray(item.jobs)) return composed(status, jobReasonWords(item));
  const reason = text(item.termination_reason);
  if (status === 'failed') {
    // The job that failed says why; the last listed one is the newest submission.
    for (const job of item.jobs.slice().reverse()) {
      if (!job || job.status !== 'failed') continue;
      const words = jobReasonWords(job);
      if (words) return composed(status, words);
    }
    return composed(status, reason && reason !== 'job_failed' ? terminationReasonText(reason) : '');
  }
  if (status === 'terminated' || status === 'terminating') {
    // A limit that ended a job says more than the run's own reason.
    if (item.jobs.some((j) => j && j.termination_reason === 'max_duration_exceeded')) {
      return composed(status, terminationReasonText('max_duration_exceeded'));
    }
    return composed(status, reason ? terminationReasonText(reason) : '');
  }
  return status;
}

// The part of statusMessage() that the status label does not already say: "exit 3" of "failed
// (exit 3)", a message that does not start with the status whole, '' for just the status.
export function statusReason(item) {
  const message = statusMessage(item);
  const status = item && typeof item.status === 'string' ? item.status : 'unknown';
  if (message === status) return '';
  const prefix = `${status} (`;
  if (message.startsWith(prefix) && message.endsWith(')')) {
    return message.slice(prefix.length, -1).trim();
  }
  return message;
}
