import { useState } from "react";
import { useSocket } from "../lib/useSocket";
import { ModelPerformanceWidget } from "./ML/ModelPerformanceWidget";
import { TrainingLogsWidget } from "./ML/TrainingLogsWidget";
import { StudyWidget } from "./StudyWidget";

/** The performance widget on its own (a deployment's admin page), reloading when the dashboard
 * socket says that deployment changed, as it does inside the dashboard. */
export function LivePerformanceWidget({ deployment, WebSocketImpl, fetchJson }) {
  const [pushes, setPushes] = useState(0);
  useSocket({
    path: "/ws/dashboard/",
    WebSocketImpl,
    onMessage: (msg) => {
      if (msg.type === "deployment" && msg.deployment?.name === deployment) setPushes((n) => n + 1);
    },
  });
  return <ModelPerformanceWidget deployment={deployment} refreshKey={pushes} {...(fetchJson ? { fetchJson } : {})} />;
}

/** Widgets that can be placed on any portal page (admin run and deployment pages) by a placeholder. */
export const EMBEDDABLE = {
  "training-logs": ["Training logs", (data) => <TrainingLogsWidget runId={Number(data.runId)} />],
  "model-performance": ["Model performance", (data) => <LivePerformanceWidget deployment={data.deployment} />],
  "tuning-study": ["Tuning study", (data) => <StudyWidget studyId={Number(data.studyId)} />],
};
