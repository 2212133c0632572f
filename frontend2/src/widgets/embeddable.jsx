import { ModelPerformanceWidget } from "./ML/ModelPerformanceWidget";
import { TrainingLogsWidget } from "./ML/TrainingLogsWidget";

/** Widgets that can be placed on any portal page (admin run and deployment pages) by a placeholder. */
export const EMBEDDABLE = {
  "training-logs": ["Training logs", (data) => <TrainingLogsWidget runId={Number(data.runId)} />],
  "model-performance": ["Model performance", (data) => <ModelPerformanceWidget deployment={data.deployment} />],
};
