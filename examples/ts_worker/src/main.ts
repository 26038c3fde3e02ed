// A TypeScript DBOS application that Airflow drives through dbos-airflow (README, "Applications in
// other languages"). Run by tests/test_typescript_app.py:
//
//   DBOS_SYSTEM_DATABASE_URL=postgresql://.../x_dbos_sys node examples/ts_worker/dist/main.js
//
// It prints "WORKER READY" once launched and its queue is registered. Workflows enqueued from
// Airflow arrive in DBOS portable JSON (the provider's default), and everything they store
// (output, error, events) is portable JSON too, so Airflow reads it without pickle.
import { DBOS } from '@dbos-inc/dbos-sdk';

export const QUEUE = 'ts_q';
export const APP_VERSION = 'ts-test';

/** A TypeScript error class: Airflow sees its name and message. */
export class OrderRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OrderRejectedError';
  }
}

async function double(x: number): Promise<number> {
  return x * 2;
}

async function quote(order: { order_id: string; items: { sku: string; qty: number; price: number }[] }) {
  const subtotal = await DBOS.runStep(async () => order.items.reduce((s, i) => s + i.qty * i.price, 0), {
    name: 'subtotal',
  });
  return { order_id: order.order_id, items: order.items.length, subtotal, lang: 'typescript' };
}

async function sleepThenReturn(seconds: number): Promise<string> {
  await DBOS.sleepSeconds(seconds);
  return `slept ${seconds}s in TypeScript`;
}

async function approval(topic: string): Promise<{ got: unknown; by: string }> {
  await DBOS.setEvent('status', 'waiting');
  const msg = await DBOS.recv<unknown>(topic, 600);
  await DBOS.setEvent('status', 'done');
  return { got: msg, by: 'typescript' };
}

async function reject(reason: string): Promise<never> {
  throw new OrderRejectedError(reason);
}

async function echo(...args: unknown[]): Promise<{ args: unknown[] }> {
  return { args };
}

async function publish(key: string, value: unknown): Promise<string> {
  await DBOS.setEvent(key, value);
  return 'published';
}

// A child started from TypeScript with the SDK defaults, and one declared portable.
async function childDefault(x: number): Promise<{ doubled: number }> {
  return { doubled: x * 2 };
}
async function childPortable(x: number): Promise<{ doubled: number }> {
  return { doubled: x * 2 };
}

export const wfDouble = DBOS.registerWorkflow(double, { name: 'ts_double' });
export const wfQuote = DBOS.registerWorkflow(quote, { name: 'ts_quote' });
export const wfSleep = DBOS.registerWorkflow(sleepThenReturn, { name: 'ts_sleep' });
export const wfApproval = DBOS.registerWorkflow(approval, { name: 'ts_approval' });
export const wfReject = DBOS.registerWorkflow(reject, { name: 'ts_reject' });
export const wfEcho = DBOS.registerWorkflow(echo, { name: 'ts_echo' });
export const wfPublish = DBOS.registerWorkflow(publish, { name: 'ts_publish' });
export const wfChildDefault = DBOS.registerWorkflow(childDefault, { name: 'ts_child_default' });
export const wfChildPortable = DBOS.registerWorkflow(childPortable, {
  name: 'ts_child_portable',
  serialization: 'portable',
});

async function parent(x: number): Promise<{ children: string[] }> {
  const a = await DBOS.startWorkflow(wfChildDefault)(x);
  const b = await DBOS.startWorkflow(wfChildPortable)(x);
  await a.getResult();
  await b.getResult();
  return { children: [a.workflowID, b.workflowID] };
}
export const wfParent = DBOS.registerWorkflow(parent, { name: 'ts_parent' });

// Class workflows: registered under a class name, and one under a "Class.method" name.
export class Billing {
  static async charge(amount: number): Promise<string> {
    return `charged ${amount}`;
  }
  static async refund(amount: number): Promise<string> {
    return `refunded ${amount}`;
  }
}
export const wfCharge = DBOS.registerWorkflow(Billing.charge, { name: 'charge', className: 'Billing' });
export const wfRefund = DBOS.registerWorkflow(Billing.refund, { name: 'Billing.refund', className: 'Billing' });

async function main(): Promise<void> {
  const url = process.env.DBOS_SYSTEM_DATABASE_URL;
  if (!url) {
    throw new Error('set DBOS_SYSTEM_DATABASE_URL to the DBOS system database (postgresql://...)');
  }
  DBOS.setConfig({
    name: process.env.DBOS_APP_NAME ?? 'ts-worker',
    systemDatabaseUrl: url,
    applicationVersion: APP_VERSION,
    executorID: process.env.DBOS_EXECUTOR_ID ?? 'ts-worker',
  });
  await DBOS.launch();
  await DBOS.registerQueue(QUEUE);
  console.log('WORKER READY');
  const stop = async (): Promise<void> => {
    await DBOS.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
