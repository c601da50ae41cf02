/** Running programs: one runner, typed failures, a fake for tests. */
export {
  SystemRunner,
  systemRunner,
  runChecked,
  argvInNetns,
  netnsPath,
  netnsName,
  type Command,
  type Completed,
  type Runner,
} from "./runner.js";
export {
  ProcessError,
  isProcessError,
  exitFailure,
  classifyMessage,
  type MessageKind,
  type ProcessFailureKind,
} from "./errors.js";
