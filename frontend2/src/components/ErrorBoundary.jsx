import { Component } from "react";

/** A widget that throws while rendering shows what went wrong instead of leaving a blank box. */
export class ErrorBoundary extends Component {
  constructor(props) {
    super(props);
    this.state = { error: null };
  }

  static getDerivedStateFromError(error) {
    return { error };
  }

  render() {
    if (this.state.error) {
      return (
        <div className="mlops-error" role="alert">
          <strong>{this.props.name || "This widget"} failed:</strong> {this.state.error.message}{" "}
          <button type="button" className="mlops-btn" onClick={() => this.setState({ error: null })}>
            Try again
          </button>
        </div>
      );
    }
    return this.props.children;
  }
}
